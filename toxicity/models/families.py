"""The registry of model families: the name a checkpoint records, and the class that builds it back.

Families come from toxicity's own (FAMILIES) and from plugins that whoever runs toxicity names, never from
a checkpoint: a checkpoint only names its family, and one not registered is refused. A plugin is a module
that lists its TaggerModule subclasses in `TOXICITY_FAMILIES`, named in the TOXICITY_FAMILY_MODULES
environment variable (comma-separated) or in the `toxicity.families` entry-point group of an installed
package. Plugins are imported only when a family is not one of toxicity's own.
"""

from __future__ import annotations

import importlib
import os
from importlib.metadata import entry_points

from toxicity.models.base import TaggerModule
from toxicity.models.encoder import ToxicCommentTagger
from toxicity.models.hybrid import HybridTagger
from toxicity.models.text2text import TextToTextTagger

FAMILIES = {tagger.family: tagger for tagger in (ToxicCommentTagger, TextToTextTagger, HybridTagger)}
ENCODER, TEXT2TEXT, HYBRID = ToxicCommentTagger.family, TextToTextTagger.family, HybridTagger.family

MODULES_VARIABLE = "TOXICITY_FAMILY_MODULES"
ENTRY_POINT_GROUP = "toxicity.families"
HOW_TO_REGISTER = (
    f"name the module that defines it in {MODULES_VARIABLE} (comma-separated) or in the "
    f"'{ENTRY_POINT_GROUP}' entry-point group of its package"
)


class UnknownFamily(LookupError):
    """A family neither toxicity nor any registered plugin defines."""


def family_class(family: str) -> type[TaggerModule]:
    """The class that builds a model of `family`: toxicity's own, else a registered plugin's."""
    if family in FAMILIES:
        return FAMILIES[family]
    registered = registered_families()
    if family not in registered:
        raise UnknownFamily(
            f"model family {family!r} is not registered (toxicity's own: {', '.join(FAMILIES)}); "
            f"if a plugin defines it, {HOW_TO_REGISTER}."
        )
    return registered[family]


def registered_families() -> dict[str, type[TaggerModule]]:
    """toxicity's own families and those of every plugin module; a name defined twice is refused."""
    registered = dict(FAMILIES)
    for source, module in plugin_modules():
        for tagger in families_in(module, source):
            if tagger.family in registered and registered[tagger.family] is not tagger:
                raise ValueError(
                    f"{source}: family {tagger.family!r} ({tagger.__module__}.{tagger.__qualname__}) is "
                    f"already {registered[tagger.family].__qualname__}'s; give it another name."
                )
            registered[tagger.family] = tagger
    return registered


def plugin_modules() -> list[tuple[str, object]]:
    """(where it was named, the imported module) for each plugin module."""
    names = [name.strip() for name in os.environ.get(MODULES_VARIABLE, "").split(",") if name.strip()]
    modules = [(MODULES_VARIABLE, _imported(name, MODULES_VARIABLE)) for name in names]
    for point in entry_points(group=ENTRY_POINT_GROUP):
        source = f"entry point {point.name} = {point.value} ({ENTRY_POINT_GROUP})"
        modules.append((source, _imported(point.module, source)))
    return modules


def _imported(name: str, source: str):
    try:
        return importlib.import_module(name)
    except ImportError as error:
        raise ValueError(f"{source}: cannot import family module {name!r} ({error}).") from error


def families_in(module, source: str) -> list[type[TaggerModule]]:
    """The TaggerModule subclasses a plugin module lists in TOXICITY_FAMILIES, each with its own name."""
    taggers = list(getattr(module, "TOXICITY_FAMILIES", ()))
    if not taggers:
        raise ValueError(f"{source}: module {module.__name__} lists no TOXICITY_FAMILIES.")
    for tagger in taggers:
        if not (isinstance(tagger, type) and issubclass(tagger, TaggerModule)):
            raise TypeError(f"{source}: {tagger!r} in TOXICITY_FAMILIES is not a TaggerModule subclass.")
        named = isinstance(vars(tagger).get("family"), str)
        if not named or not isinstance(getattr(tagger, "config_key", None), str):
            raise TypeError(f"{source}: {tagger.__qualname__} sets no family of its own, or no config_key.")
    return taggers
