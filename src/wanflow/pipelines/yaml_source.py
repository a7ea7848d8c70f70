"""Safe YAML loading that remembers where every key and value came from.

PyYAML's plain loaders forget positions and silently keep the last of two duplicate keys. This
loader composes the node graph with ``SafeLoader`` and builds plain Python data itself, so every
value and every mapping key keeps its line and column, duplicates are errors, and alias expansion
and nesting are bounded (a "billion laughs" file cannot exhaust memory, ``[[[[...`` cannot
exhaust the stack). Bytes that are not text (invalid UTF-8, NUL and other control characters)
are errors at their line and column.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

from wanflow._diagnostics import Diagnostic, Location, format_path
from wanflow._exceptions import PipelineError
from wanflow.pipelines.source_document import DataPath, SourceDocument, text_position

_PLAIN_TAGS = {f"tag:yaml.org,2002:{name}" for name in ("str", "int", "float", "bool", "null", "map", "seq")}
_STR_TAG = "tag:yaml.org,2002:str"
MAX_NODES = 100_000
MAX_DEPTH = 100  # mappings and lists inside each other


class _Loader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2 booleans (only true/false) and timestamps left as strings.

    YAML 1.1 turns ``no``, ``on`` and ``2026-11-22`` into booleans and dates; in a prompt recipe
    those are almost always meant as text.
    """


_Loader.yaml_implicit_resolvers = {
    key: [(tag, regexp) for tag, regexp in resolvers if tag not in ("tag:yaml.org,2002:bool", "tag:yaml.org,2002:timestamp")]
    for key, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.copy().items()
}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


def _libyaml_loader() -> Any:
    """SafeLoader's libyaml twin (about 10 times faster), or None.

    Only libyaml 0.2.6 or later: it refuses nesting past 1,000 levels, where older versions let
    PyYAML's C composer recurse without bound.
    """
    base = getattr(yaml, "CSafeLoader", None)
    try:
        version = yaml._yaml.get_version()
    except AttributeError:
        return None
    if base is None or tuple(version) < (0, 2, 6):
        return None
    return type("_CLoader", (base,), {"__doc__": "SafeLoader with _Loader's resolvers, on libyaml.",
                                      "yaml_implicit_resolvers": _Loader.yaml_implicit_resolvers})


_CLoader = _libyaml_loader()
_NON_PRINTABLE = yaml.reader.Reader.NON_PRINTABLE  # characters PyYAML refuses (with its own message)


class _TooDeep(yaml.YAMLError):
    def __init__(self, mark: yaml.Mark) -> None:
        super().__init__(f"values nest more than {MAX_DEPTH} levels deep")
        self.mark = mark


class _BoundedLoader(_Loader):
    """Refuses nesting past MAX_DEPTH: PyYAML composes nested values recursively."""

    _depth = 0

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise _TooDeep(self.peek_event().start_mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def load_yaml_text(text: str, file: str) -> SourceDocument:
    """Parse ``text`` (named ``file`` in messages) into a located SourceDocument.

    A valid document is composed by libyaml when available; anything libyaml refuses, or that
    nests too deeply, is parsed again by the pure-Python loader, whose messages and positions
    are the ones users see (the two libraries word their errors differently).
    """
    # Tabs: libyaml accepts some the pure-Python scanner refuses (``a:\t1``); a file's validity
    # must not depend on which library is installed, so files with tabs take the Python path.
    if _CLoader is not None and "\t" not in text and not _NON_PRINTABLE.search(text):
        document = _load_with_libyaml(text, file)
        if document is not None:
            return document
    return _load_with_python(text, file)


def _load_with_libyaml(text: str, file: str) -> SourceDocument | None:
    """The document composed by libyaml, or None when the pure-Python loader must decide: any
    problem at all (a valid document is all libyaml ever returns)."""
    loader = _CLoader(text)
    try:
        node = loader.get_single_node()
    except yaml.YAMLError:
        return None
    finally:
        loader.dispose()
    document = SourceDocument(file=file, data=None)
    if node is None:
        return document
    try:
        document.data = _Builder(loader, document, check_depth=True).build(node, ())
    except (_TooDeep, PipelineError):  # the pure-Python loader says which problem comes first, and how
        return None
    return document


def _load_with_python(text: str, file: str) -> SourceDocument:
    try:
        loader = _BoundedLoader(text)  # checks for characters YAML does not allow, such as NUL
    except yaml.reader.ReaderError as error:
        raise PipelineError([_unprintable(error, text, file)]) from None
    try:
        node = loader.get_single_node()
    except yaml.reader.ReaderError as error:
        raise PipelineError([_unprintable(error, text, file)]) from None
    except _TooDeep as error:
        raise PipelineError([Diagnostic(str(error), Location(file, error.mark.line + 1, error.mark.column + 1),
                                        allowed=f"at most {MAX_DEPTH} levels")]) from None
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        location = Location(file, mark.line + 1, mark.column + 1) if mark else Location(file, 1, 1)
        problem = error.problem or error.context or "invalid YAML"
        raise PipelineError([Diagnostic(f"YAML syntax error: {problem}", location)]) from None
    except yaml.YAMLError as error:
        raise PipelineError([Diagnostic(f"YAML error: {error}", Location(file, 1, 1))]) from None
    finally:
        loader.dispose()
    document = SourceDocument(file=file, data=None)
    if node is None:
        document.data = None
        return document
    builder = _Builder(loader, document)
    document.data = builder.build(node, ())
    return document


def _unprintable(error: yaml.reader.ReaderError, text: str, file: str) -> Diagnostic:
    character = error.character if isinstance(error.character, int) else ord(str(error.character)[:1] or "\0")
    shown = "a NUL byte (\\0)" if character == 0 else f"the control character U+{character:04X}"
    line, column = text_position(text, error.position)
    return Diagnostic(f"{shown} is not allowed in YAML text; remove it", Location(file, line, column))


class _Builder:
    """Turns a composed YAML node graph into plain data, recording positions."""

    def __init__(self, loader: Any, document: SourceDocument, check_depth: bool = False) -> None:
        self._loader = loader
        self._document = document
        self._visited = 0
        # The pure-Python loader refuses deep nesting while composing; libyaml's nodes are checked here.
        self._check_depth = check_depth

    def _location(self, node: yaml.Node) -> Location:
        return Location(self._document.file, node.start_mark.line + 1, node.start_mark.column + 1)

    def _fail(self, node: yaml.Node, message: str, path: DataPath) -> PipelineError:
        return PipelineError([Diagnostic(message, self._location(node), path=format_path(path) or None)])

    def build(self, node: yaml.Node, path: DataPath) -> Any:
        self._visited += 1
        if self._visited > MAX_NODES:
            # Aliases re-visit shared nodes, so this also bounds alias expansion.
            raise self._fail(node, f"document expands to more than {MAX_NODES:,} values (alias bomb?)", path)
        self._document.value_marks[path] = self._location(node)
        if node.tag not in _PLAIN_TAGS:
            # Only plain data: no Python objects, no binary, no sets (and nothing is ever constructed from them).
            raise self._fail(node, f"unsupported YAML value: tag {node.tag} is not allowed", path)
        if self._check_depth and len(path) >= MAX_DEPTH - 1:  # stricter than the limit: the fallback decides
            raise _TooDeep(node.start_mark)
        if len(path) > MAX_DEPTH:  # composing bounded the nesting: only an alias inside itself gets here
            raise self._fail(node, f"values nest more than {MAX_DEPTH} levels deep (an alias inside itself?)", path[:3])
        if isinstance(node, (yaml.MappingNode, yaml.SequenceNode)):
            self._document.containers.add(path)
        if isinstance(node, yaml.MappingNode):
            return self._build_mapping(node, path)
        if isinstance(node, yaml.SequenceNode):
            return [self.build(item, path + (index,)) for index, item in enumerate(node.value)]
        if node.tag == _STR_TAG:
            return node.value  # what SafeConstructor.construct_yaml_str returns, without its bookkeeping
        try:
            return self._loader.construct_object(node, deep=True)
        except yaml.constructor.ConstructorError as error:
            raise self._fail(node, f"unsupported YAML value: {error.problem}", path) from None

    def _build_mapping(self, node: yaml.MappingNode, path: DataPath) -> dict[str, Any]:
        own_count = sum(1 for key_node, _ in node.value if key_node.tag != "tag:yaml.org,2002:merge")
        try:
            self._loader.flatten_mapping(node)  # resolves "<<" merge keys; merged pairs come first
        except yaml.constructor.ConstructorError as error:
            raise self._fail(node, f"bad merge key: {error.problem}", path) from None
        merged_count = len(node.value) - own_count
        result: dict[str, Any] = {}
        merged_keys: set[str] = set()
        for index, (key_node, value_node) in enumerate(node.value):
            if not isinstance(key_node, yaml.ScalarNode):
                raise self._fail(key_node, "mapping keys must be plain text", path)
            key = key_node.value if key_node.tag == _STR_TAG else self._loader.construct_object(key_node)
            if key is None:
                raise self._fail(key_node, "a key must not be empty (null, ~ or a bare ':')", path)
            if not isinstance(key, str):
                key = str(key)
            child = path + (key,)
            if index < merged_count:
                merged_keys.add(key)
            elif key in merged_keys:
                merged_keys.discard(key)  # an explicit key overrides a merged one, as YAML intends
            elif key in result:
                first = self._document.key_marks[child]
                raise self._fail(key_node, f"duplicate key '{key}' (first defined at line {first.line})", child)
            self._document.key_marks[child] = self._location(key_node)
            result[key] = self.build(value_node, child)
        return result
