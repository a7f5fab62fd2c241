"""The registry of model families: the name a checkpoint records, and the class that builds it back.

A new family is a TaggerModule subclass with its own `family` and `config_key`, added to FAMILIES.
"""

from toxicity.models.encoder import ToxicCommentTagger
from toxicity.models.hybrid import HybridTagger
from toxicity.models.text2text import TextToTextTagger

FAMILIES = {tagger.family: tagger for tagger in (ToxicCommentTagger, TextToTextTagger, HybridTagger)}
ENCODER, TEXT2TEXT, HYBRID = ToxicCommentTagger.family, TextToTextTagger.family, HybridTagger.family
