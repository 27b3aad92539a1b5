"""FiftyNet: causal language models that mix tokens with FFT-based spectral filters instead of attention.

Importing this package registers FiftyNet with the transformers Auto classes, so `AutoConfig`, `AutoModel`,
`AutoModelForCausalLM`, `AutoModelForSequenceClassification` and `AutoTokenizer` resolve `model_type="fiftynet"`
without `trust_remote_code`.
"""

from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForCausalLM,
    AutoModelForSequenceClassification,
    AutoTokenizer,
)

from .cache_fiftynet import FiftyNetMixerState
from .compression import Int8Linear, LowRankLinear, SpectralLinear, polar_quantize
from .configuration_fiftynet import FiftyNetConfig
from .modeling_fiftynet import (
    FiftyNetComplexEmbedding,
    FiftyNetForCausalLM,
    FiftyNetForSequenceClassification,
    FiftyNetModel,
    FiftyNetPreTrainedModel,
)
from .tokenization_fiftynet import FiftyNetByteTokenizer


AutoConfig.register(FiftyNetConfig.model_type, FiftyNetConfig, exist_ok=True)
AutoModel.register(FiftyNetConfig, FiftyNetModel, exist_ok=True)
AutoModelForCausalLM.register(FiftyNetConfig, FiftyNetForCausalLM, exist_ok=True)
AutoModelForSequenceClassification.register(FiftyNetConfig, FiftyNetForSequenceClassification, exist_ok=True)
AutoTokenizer.register(FiftyNetConfig, slow_tokenizer_class=FiftyNetByteTokenizer, exist_ok=True)

__all__ = [
    "FiftyNetByteTokenizer",
    "FiftyNetConfig",
    "FiftyNetComplexEmbedding",
    "FiftyNetForCausalLM",
    "FiftyNetForSequenceClassification",
    "FiftyNetMixerState",
    "FiftyNetModel",
    "FiftyNetPreTrainedModel",
    "Int8Linear",
    "LowRankLinear",
    "SpectralLinear",
    "polar_quantize",
]
