"""One source for a command's options: a pydantic model gives the flags, the config file and the docs.

    p = sub.add_parser("eval")
    add_config_flags(p, EvalConfig)                       # --model, --base-url, --limit, --progress/--no-progress ...
    p.add_argument("--config", metavar="FILE.yaml")
    ...
    cfg = config_from_args(EvalConfig, args, config_file=args.config)

Precedence: the model's defaults < the YAML config file < the flags actually given on the command line
(generated flags default to "not given", so a flag never overrides the file with a default).

Flags, one per field:
- name: `--field-name` (underscores become dashes), after `prefix` (`prefix="teacher-"` gives
  `--teacher-model`; pass the same prefix to `config_from_args`).
- `bool`: `--x` / `--no-x`.
- `int`, `float`, `str`, `Path`: one value; `Literal[...]` and `Enum`: `choices`.
  An optional field (`X | None`) also takes the word `none` to unset it.
- `list[X]`: the flag is repeated (`--base-url A --base-url B`).
- `dict[str, X]`: `KEY=VALUE`, repeated; given pairs are merged over the file's mapping. Values
  are typed like `--set` (numbers, true/false, a,b lists) and dashes in keys become underscores,
  except in a mapping of text (`dict[str, str]`), where key and value stay exactly as given.
- help: the field's description, then `[default: X]` (the default is never written by hand);
  a field whose default is None gets no default text: its description says what unset means.
- Extra per-field settings go in `Field(json_schema_extra={"cli": {...}})`: `aliases` (more flag
  strings, e.g. `["--judge"]`), `metavar`, `group` (the argparse group title) and `file_only` (no flag).

Nested sections (a field whose type is a pydantic model, as in `tis data build` stage configs or
`tis train`): every leaf gets a dotted flag `--section.key` (`--lora.r 16`, `--teacher.base-url URL`;
the section keeps its field name, the key is dashed), listed in `--help` under the section's name;
in the config file the section is a nested mapping (`lora: {r: 16}`). A section given in part keeps
the rest of its default, key by key: defaults < file < flags at every depth. Types a flag cannot spell (a list or a
mapping of models, unions of several kinds) are file-only; the docs say so.

Config files: keys are FIELD names (`base_url`, not `base-url`). An unknown key or a wrong type is a
`ConfigError` naming the file and the key (`runs.yaml: limt: unknown key (did you mean limit?)`); a
flag-style key is refused with the key to write instead. Errors about a given flag name that flag as
it exists. Everything raises `tis.core.errors.ConfigError`.

`config_reference(model_cls)` writes the markdown table of keys (key, flag, type, default,
description) from which the documentation is generated, so it cannot drift from the code.
"""

from __future__ import annotations

import argparse
import difflib
import enum
import types
import typing
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_core import PydanticUndefined

from tis.core.errors import ConfigError

__all__ = ["add_config_flags", "config_from_args", "load_config_file", "read_config_file",
           "config_reference", "flag_name", "field_flags"]

_NONE_WORDS = ("none", "null")


# --- annotations -------------------------------------------------------------------------------

def _unwrap_optional(annotation: Any) -> tuple[Any, bool]:
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        optional = len(args) < len(typing.get_args(annotation))
        if len(args) == 1:
            return args[0], optional
        return typing.Union[tuple(args)], optional  # noqa: UP007 - several kinds: file-only
    return annotation, False


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _scalar(annotation: Any) -> tuple[Any, tuple | None] | None:
    """(converter, choices) for a type one flag value can spell, else None."""
    origin = typing.get_origin(annotation)
    if origin is typing.Literal:
        values = typing.get_args(annotation)
        kinds = {type(v) for v in values}
        conv = kinds.pop() if len(kinds) == 1 and kinds <= {str, int, float} else str
        return conv, tuple(values)
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return str, tuple(m.value for m in annotation)
    if annotation in (str, int, float, Path):
        return annotation, None
    if annotation is Any:
        return str, None
    return None


def cli(group: str, metavar: str | None = None, *aliases: str) -> dict:
    """A field's flag settings, for `Field(json_schema_extra=cli(...))`: its help group, metavar and
    more flag names."""
    settings: dict = {"group": group, "aliases": list(aliases)}
    if metavar:
        settings["metavar"] = metavar
    return {"cli": settings}


def _cli_extra(info: Any) -> dict:
    extra = info.json_schema_extra
    if isinstance(extra, Mapping):
        cli = extra.get("cli")
        if isinstance(cli, Mapping):
            return dict(cli)
    return {}


def _type_text(annotation: Any) -> str:
    inner, optional = _unwrap_optional(annotation)
    origin = typing.get_origin(inner)
    if origin is typing.Literal:
        text = " | ".join(str(v) for v in typing.get_args(inner))
    elif isinstance(inner, type) and issubclass(inner, enum.Enum):
        text = " | ".join(str(m.value) for m in inner)
    elif origin in (list, tuple, set, frozenset):
        args = typing.get_args(inner)
        text = f"list of {_type_text(args[0]) if args else 'any'}"
    elif origin is dict:
        args = typing.get_args(inner)
        text = f"mapping of {_type_text(args[1]) if len(args) == 2 else 'any'}"
    elif _is_model(inner):
        text = "section"
    elif inner is Any:
        text = "any"
    elif isinstance(inner, type):
        text = {"str": "text", "Path": "path", "float": "number", "int": "integer", "bool": "true/false"}.get(
            inner.__name__, inner.__name__)
    else:
        text = str(inner).replace("typing.", "")
    return f"{text} or none" if optional else text


def _default(info: Any) -> Any:
    if info.is_required():
        return PydanticUndefined
    return info.get_default(call_default_factory=True)


def _default_text(value: Any) -> str | None:
    if value is PydanticUndefined:
        return "required"
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, enum.Enum):
        return str(value.value)
    if isinstance(value, BaseModel):
        return None
    if isinstance(value, (list, tuple, set, dict)) and not value:
        return "none"
    if isinstance(value, (list, tuple)):
        return ", ".join(map(str, value))
    if isinstance(value, dict):
        return ", ".join(f"{k}={v}" for k, v in value.items())
    return str(value)


# --- flags ---------------------------------------------------------------------------------------

def flag_name(path: Iterable[str], prefix: str = "") -> str:
    """The flag of a field path: ("lora", "target_modules") -> --lora.target-modules."""
    parts = list(path)
    if len(parts) == 1:
        return f"--{prefix}{parts[0].replace('_', '-')}"
    return f"--{prefix}{'.'.join(parts[:-1])}.{parts[-1].replace('_', '-')}"


def _dest(path: Iterable[str], prefix: str = "") -> str:
    return prefix.replace("-", "_") + ".".join(path)


class _Leaf:
    """A field that gets a flag (or is file-only), with everything the flag, the docs and errors need."""

    def __init__(self, path: tuple[str, ...], info: Any, prefix: str):
        self.path, self.info, self.prefix = path, info, prefix
        self.cli = _cli_extra(info)
        self.flag = flag_name(path, prefix)
        self.dest = _dest(path, prefix)
        self.annotation = info.annotation
        inner, self.optional = _unwrap_optional(info.annotation)
        self.inner = inner
        origin = typing.get_origin(inner)
        self.kind: str | None = None  # bool | scalar | list | dict | None (file-only)
        self.conv: Any = None
        self.choices: tuple | None = None
        self.raw_values = False  # dict values kept as given (a mapping of text)
        if inner is bool:
            self.kind = "bool"
        elif origin in (list, tuple, set, frozenset):
            args = typing.get_args(inner)
            item = args[0] if args else str
            item, _ = _unwrap_optional(item)
            sc = _scalar(item)
            if sc and (origin is not tuple or (len(args) == 2 and args[1] is Ellipsis)):
                self.kind, (self.conv, self.choices) = "list", sc
        elif origin is dict:
            args = typing.get_args(inner)
            if not args or (args[0] is str and (args[1] is Any or _scalar(_unwrap_optional(args[1])[0]))):
                self.kind = "dict"
                self.raw_values = bool(args) and _unwrap_optional(args[1])[0] in (str, Path)
        else:
            sc = _scalar(inner)
            if sc:
                self.kind, (self.conv, self.choices) = "scalar", sc
        if self.cli.get("file_only"):
            self.kind = None

    @property
    def key(self) -> str:
        return ".".join(self.path)

    def flags(self) -> list[str]:
        if self.kind is None:
            return []
        return [self.flag, *self.cli.get("aliases", ())]

    def help(self) -> str:
        text = (self.info.description or "").strip()
        if self.kind == "bool":
            text = f"{text} (off: {_no_flag(self.flag)})".strip()
        default = _default_text(_default(self.info))
        if default is not None and self.kind is not None:
            text = f"{text} [default: {default}]" if text else f"[default: {default}]"
        return text


def _leaves(model_cls: type[BaseModel], prefix: str = "", base: tuple[str, ...] = (),
            exclude: frozenset = frozenset()) -> list[_Leaf]:
    out: list[_Leaf] = []
    for name, info in model_cls.model_fields.items():
        path = (*base, name)
        if ".".join(path) in exclude or name in exclude and not base:
            continue
        inner, _ = _unwrap_optional(info.annotation)
        if _is_model(inner) and not _cli_extra(info).get("file_only"):
            out.extend(_leaves(inner, prefix, path, exclude))
        else:
            out.append(_Leaf(path, info, prefix))
    return out


def field_flags(model_cls: type[BaseModel], *, prefix: str = "") -> dict[str, str]:
    """key (dotted field path) -> its flag, for every field that has one."""
    return {leaf.key: leaf.flag for leaf in _leaves(model_cls, prefix) if leaf.kind is not None}


def _converter(leaf: _Leaf):
    conv = leaf.conv

    def convert(text: str):
        if leaf.optional and text.strip().lower() in _NONE_WORDS:
            return None
        try:
            return conv(text)
        except (TypeError, ValueError):
            raise argparse.ArgumentTypeError(
                f"invalid {_type_text(conv)} value: {text!r}") from None

    convert.__name__ = getattr(conv, "__name__", "value")
    return convert


def _metavar(leaf: _Leaf) -> str | None:
    if "metavar" in leaf.cli:
        return leaf.cli["metavar"]
    if leaf.kind == "dict":
        return "KEY=VALUE"
    if leaf.choices:
        return None
    return leaf.path[-1].upper()


def add_config_flags(parser_or_group: Any, model_cls: type[BaseModel], *, exclude: Iterable[str] = frozenset(),
                     prefix: str = "") -> None:
    """Add one flag per field of `model_cls` (see the module docstring). `exclude`: field names (or
    dotted paths of nested keys) that get no flag. Fields whose `cli.group` is set go into an argument
    group of that title on the parser (or on the parser the group belongs to)."""
    exclude = frozenset(exclude)
    parser = parser_or_group
    groups: dict[str, Any] = {}
    root = isinstance(parser_or_group, argparse._ArgumentGroup)  # a given group takes every flag
    for leaf in _leaves(model_cls, prefix, exclude=exclude):
        if leaf.kind is None:
            continue
        title = leaf.cli.get("group") or (leaf.path[0] if len(leaf.path) > 1 else None)
        target = parser
        if title and not root:
            if title not in groups:
                existing = [g for g in parser._action_groups if g.title == title]
                groups[title] = existing[0] if existing else parser.add_argument_group(title)
            target = groups[title]
        help_text = leaf.help().replace("%", "%%")
        common = {"dest": leaf.dest, "default": argparse.SUPPRESS}
        if leaf.kind == "bool":
            no = [_no_flag(leaf.flag)] + [_no_flag(a) for a in leaf.cli.get("aliases", ()) if a.startswith("--")]
            target.add_argument(*leaf.flags(), action="store_true", help=help_text, **common)
            target.add_argument(*no, action="store_false", help=argparse.SUPPRESS, **common)
            continue
        kwargs: dict[str, Any] = {"help": help_text, "metavar": _metavar(leaf), **common}
        if leaf.kind == "scalar":
            kwargs.update(type=_converter(leaf), choices=leaf.choices)
        elif leaf.kind == "list":
            kwargs.update(action="append", type=_converter(leaf), choices=leaf.choices)
        elif leaf.kind == "dict":
            kwargs.update(action="append")
        target.add_argument(*leaf.flags(), **kwargs)


def _no_flag(flag: str) -> str:
    """--progress -> --no-progress; --lora.use-dora -> --lora.no-use-dora."""
    head, dot, tail = flag[2:].rpartition(".")
    return f"--{head}{dot}no-{tail}"


# --- values --------------------------------------------------------------------------------------

def _typed(text: str) -> Any:
    if "," in text:
        return [_typed(t) for t in text.split(",") if t != ""]
    low = text.lower()
    if low in ("true", "false"):
        return low == "true"
    if low in ("nan", "inf", "-inf", "infinity", "-infinity"):
        return text
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def parse_pairs(flag: str, pairs: list[str], *, typed: bool = True) -> dict[str, Any]:
    """`flag KEY=VALUE` pairs as a mapping. Typed: option-like keys (`-` read as `_`) and values
    typed (ints, floats, true/false, comma lists; the rest text). Untyped: both exactly as given."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"{flag} takes KEY=VALUE, got '{pair}'")
        if typed:  # option-like keys: `--set sample-seed=3` is the option sample_seed
            out[key.strip().replace("-", "_")] = _typed(raw.strip())
        else:  # a mapping of text (headers, ...): key and value exactly as given
            out[key.strip()] = raw.strip()
    return out


def _set_path(data: dict, path: tuple[str, ...], value: Any) -> None:
    for part in path[:-1]:
        nxt = data.get(part)
        if not isinstance(nxt, dict):
            nxt = {} if not isinstance(nxt, BaseModel) else nxt.model_dump(exclude_unset=True)
            data[part] = nxt
        data = nxt
    data[path[-1]] = value


def _get_path(data: Mapping, path: tuple[str, ...]) -> Any:
    for part in path:
        if not isinstance(data, Mapping) or part not in data:
            return PydanticUndefined
        data = data[part]
    return data


def _flag_values(model_cls: type[BaseModel], args: argparse.Namespace, prefix: str) -> dict[tuple[str, ...], Any]:
    given: dict[tuple[str, ...], Any] = {}
    ns = vars(args)
    for leaf in _leaves(model_cls, prefix):
        if leaf.kind is None or leaf.dest not in ns:
            continue
        value = ns[leaf.dest]
        if leaf.kind == "dict" and isinstance(value, list):
            value = parse_pairs("/".join(leaf.flags()), value, typed=not leaf.raw_values)
        given[leaf.path] = (leaf, value)
    return given


def config_from_args(model_cls: type[BaseModel], args: argparse.Namespace, *, config_file: str | Path | None = None,
                     prefix: str = "") -> Any:
    """The model from its defaults < `config_file` (YAML) < the flags given in `args`."""
    data: dict[str, Any] = read_config_file(model_cls, config_file) if config_file else {}
    if config_file:
        _validate(model_cls, _with_section_defaults(model_cls, data), source=_FileSource(Path(config_file)))
    given = _flag_values(model_cls, args, prefix)
    for path, (leaf, value) in given.items():
        if leaf.kind == "dict":
            before = _get_path(data, path)
            if isinstance(before, Mapping):
                value = {**before, **value}
        _set_path(data, path, value)
    flagged = {leaf.key: leaf.flag for leaf, _ in given.values()}
    return _validate(model_cls, _with_section_defaults(model_cls, data), source=_ArgsSource(flagged, Path(config_file) if config_file else None))


class _FileSource:
    def __init__(self, path: Path):
        self.path = path

    def name(self, loc: tuple) -> str:
        return f"{self.path}: {'.'.join(map(str, loc)) or '(top level)'}"


class _ArgsSource:
    def __init__(self, flagged: dict[str, str], file: Path | None):
        self.flagged, self.file = flagged, file

    def name(self, loc: tuple) -> str:
        keys = [str(p) for p in loc]
        for n in range(len(keys), 0, -1):
            key = ".".join(keys[:n])
            if key in self.flagged:
                return self.flagged[key]
        if self.file is not None:
            return _FileSource(self.file).name(loc)
        return flag_name(keys[:1]) if keys else "options"


def _validate(model_cls: type[BaseModel], data: Mapping[str, Any], *, source: Any) -> Any:
    try:
        return model_cls.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            loc = tuple(err["loc"])
            msg = err["msg"]
            if err["type"] == "extra_forbidden":
                msg = "unknown key"
            problems.append(f"{source.name(loc)}: {msg}")
        raise ConfigError("; ".join(dict.fromkeys(problems))) from None


# --- files ---------------------------------------------------------------------------------------

def _check_keys(model_cls: type[BaseModel], data: Mapping, path: Path, base: tuple[str, ...] = ()) -> None:
    fields = model_cls.model_fields
    for key, value in data.items():
        where = ".".join((*base, str(key)))
        if not isinstance(key, str):
            raise ConfigError(f"{path}: {where}: keys are option names (text)")
        if key not in fields:
            underscored = key.replace("-", "_")
            if underscored in fields:
                full = ".".join((*base, underscored))
                raise ConfigError(f"{path}: {where}: keys are field names, not flags: write {full}")
            close = difflib.get_close_matches(key, list(fields), n=1, cutoff=0.6)
            hint = f" (did you mean {'.'.join((*base, close[0]))}?)" if close else ""
            raise ConfigError(f"{path}: {where}: unknown key{hint}")
        inner, _ = _unwrap_optional(fields[key].annotation)
        if _is_model(inner) and isinstance(value, Mapping):
            _check_keys(inner, value, path, (*base, key))


def read_yaml(path: str | Path, what: str = "config file", *, missing_hint: str = "") -> Any:
    """The YAML document in `path` (None when empty). A file that is missing, a folder, not UTF-8 or
    not YAML is a ConfigError naming `what` and the path (and the line, for YAML)."""
    import yaml

    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{what} {p} does not exist{missing_hint}") from None
    except IsADirectoryError:
        raise ConfigError(f"{what} {p} is a folder, not a YAML file") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{what} {p} is not UTF-8 text (byte {exc.start})") from None
    except OSError as exc:
        raise ConfigError(f"cannot read {what} {p}: {exc.strerror}") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{what} {p} is not valid YAML{where}: {getattr(exc, 'problem', None) or exc}") from None


def read_config_file(model_cls: type[BaseModel], path: str | Path) -> dict[str, Any]:
    """The mapping in a YAML config file, its keys checked against `model_cls` (values are not validated)."""
    p = Path(path)
    data = read_yaml(p)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {p} must hold a mapping of key: value (keys: {', '.join(model_cls.model_fields)})")
    _check_keys(model_cls, data, p)
    return data


def load_config_file(model_cls: type[BaseModel], path: str | Path) -> Any:
    """The model read from a YAML config file over its defaults; errors name the file and the key."""
    data = read_config_file(model_cls, path)
    return _validate(model_cls, _with_section_defaults(model_cls, data), source=_FileSource(Path(path)))


def _with_section_defaults(model_cls: type[BaseModel], data: Mapping[str, Any]) -> dict[str, Any]:
    """A section given in part keeps the rest of its default: when a field's default is a model
    instance with settings of its own (`lora: Lora = Lora(r=32)`), a file or flag giving only
    `lora.use_dora` keeps r = 32. Key by key, at every depth."""
    out = dict(data)
    for name, info in model_cls.model_fields.items():
        value = out.get(name)
        inner, _ = _unwrap_optional(info.annotation)
        if not (_is_model(inner) and isinstance(value, Mapping)):
            continue
        default = None if info.is_required() else info.get_default(call_default_factory=True)
        base = default.model_dump(exclude_unset=True) if isinstance(default, BaseModel) else {}
        out[name] = _with_section_defaults(inner, _deep_merge(base, value))
    return out


def _deep_merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


# --- docs ----------------------------------------------------------------------------------------

def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def config_reference(model_cls: type[BaseModel], *, prefix: str = "") -> str:
    """A markdown table of every key: the file key, its flag, type, default and description."""
    rows = ["| key | flag | type | default | description |", "| --- | --- | --- | --- | --- |"]
    for leaf in _leaves(model_cls, prefix):
        flags = ", ".join(f"`{f}`" for f in leaf.flags())
        if leaf.kind == "bool":
            flags += f" / `{_no_flag(leaf.flag)}`"
        default = _default_text(_default(leaf.info))
        rows.append(f"| `{leaf.key}` | {flags or '(file only)'} | {_md(_type_text(leaf.annotation))} | "
                    f"{_md(default) if default is not None else '-'} | {_md(leaf.info.description or '')} |")
    return "\n".join(rows) + "\n"
