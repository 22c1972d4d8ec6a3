"""Analysis tools from the papers: feature evolution (linear CKA), attention maps before and after
refinement, and attention density, for any model, configuration or checkpoint of the family."""

from refiner_nas.refiner_space.analysis.blockmaps import block_maps, map_sources
from refiner_nas.refiner_space.analysis.cka import CkaError, centered_gram, linear_cka
from refiner_nas.refiner_space.analysis.density import AttentionDensity, attention_density, row_entropy
from refiner_nas.refiner_space.analysis.features import (
    BlockFeatures,
    FeatureEvolution,
    block_features,
    feature_evolution,
)
from refiner_nas.refiner_space.analysis.maps import MapPanel, QueryAttention, maps_frame, parse_query, query_attention
from refiner_nas.refiner_space.analysis.runs import (
    AnalysisInputs,
    AnalysisReport,
    analyze_attention,
    analyze_cka,
    analyze_density,
)
from refiner_nas.refiner_space.analysis.sources import (
    ModelSource,
    SourceError,
    load_source,
    load_sources,
    resolve_config,
)

__all__ = [
    "AnalysisInputs",
    "AnalysisReport",
    "AttentionDensity",
    "BlockFeatures",
    "CkaError",
    "FeatureEvolution",
    "MapPanel",
    "ModelSource",
    "QueryAttention",
    "SourceError",
    "analyze_attention",
    "analyze_cka",
    "analyze_density",
    "attention_density",
    "block_features",
    "block_maps",
    "centered_gram",
    "feature_evolution",
    "linear_cka",
    "load_source",
    "load_sources",
    "map_sources",
    "maps_frame",
    "parse_query",
    "query_attention",
    "resolve_config",
    "row_entropy",
]
