"""Read the ``tensorrt`` Python API out of TensorRT's pybind11 binding sources and C++ headers.

``python_api(version)`` -> ``{python class name: {attribute names}}`` (``""`` = module level),
from every ``py::class_`` / ``py::enum_`` statement of ``<version>/python-bindings/src`` with its
chained ``.def`` / ``.def_property*`` / ``.def_readwrite`` / ``.value`` calls (``export_values``
puts an enum's values into its parent class; base classes are inherited). ``header_enum(version,
name)`` -> ``{member: value}`` of ``enum class <name>`` in ``<version>/include``.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

ROOT = Path("/work/shared/third_party/tensorrt")
#: set by the tensorrt package's Python code, not by the bindings
PYTHON_LEVEL = {"__version__"}


def available(version: str) -> bool:
    return (ROOT / version / "python-bindings" / "src").is_dir()


def _strip(text: str) -> str:
    """C++ comments and preprocessor lines removed, string and character literals kept (read with a small tokenizer, so
    ``//`` inside a string such as a URL stays)."""
    out, i, n = [], 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            i = text.find("\n", i)
            i = n if i < 0 else i
        elif text.startswith("/*", i):
            i = text.index("*/", i) + 2
        elif c == '"' and i and text[i - 1] == "R":
            delim = text[i + 1:text.index("(", i)]
            end = text.index(f"){delim}\"", i) + len(delim) + 2
            out.append(text[i:end])
            i = end
        elif c in "\"'":
            j = i + 1
            while j < n and text[j] != c:
                j += 2 if text[j] == "\\" else 1
            out.append(text[i:j + 1])
            i = j + 1
        else:
            out.append(c)
            i += 1
    return re.sub(r"^\s*#.*$", "", "".join(out), flags=re.M)  # preprocessor lines (all branches kept)


def _statements(text: str):
    """The statements (``...;``) of comment-free ``text``: block braces (namespaces, function
    bodies) separate statements; brackets, brace initialisers and literals inside one are kept."""
    stack: list[str] = []
    start, i, n = 0, 0, len(text)
    while i < n:
        c = text[i]
        if c == '"' and i and text[i - 1] == "R":
            delim = text[i + 1:text.index("(", i)]
            i = text.index(f"){delim}\"", i) + len(delim) + 2
            continue
        if c in "\"'":
            j = i + 1
            while j < n and text[j] != c:
                j += 2 if text[j] == "\\" else 1
            i = j + 1
            continue
        if c in "([":
            stack.append(c)
        elif c == "{":
            before = text[start:i].rstrip()
            if stack or ("py::" in before and before[-1:].isidentifier()):
                stack.append(c)  # a lambda body inside a call, or a brace initialiser
            else:
                start = i + 1  # a block
        elif c in ")]}":
            if stack:
                stack.pop()
            else:
                start = i + 1  # end of a block
        elif c == ";" and not stack:
            yield text[start:i]
            start = i + 1
        i += 1


_HEAD = re.compile(r"py::(class_|enum_)\s*<(?P<targs>.*?)>\s*(?P<var>\w+)?\s*[({]\s*(?P<scope>\w+)\s*,\s*"
                   r"\"(?P<name>\w+)\"", re.S)
_CHAIN = re.compile(r"\.(def|def_property|def_property_readonly|def_readwrite|def_readonly|def_static|"
                    r"def_property_readonly_static|def_property_static|value)\s*\(\s*\"(\w+)\"")


def _template_types(targs: str) -> list[str]:
    parts, depth, current = [], 0, ""
    for c in targs:
        if c == "<":
            depth += 1
        elif c == ">":
            depth -= 1
        if c == "," and depth == 0:
            parts.append(current.strip())
            current = ""
        else:
            current += c
    parts.append(current.strip())
    return parts


@functools.lru_cache(maxsize=None)
def python_api(version: str) -> dict[str, frozenset[str]]:
    api: dict[str, set[str]] = {"": set(PYTHON_LEVEL)}
    cpp_to_py: dict[str, str] = {}
    bases: dict[str, list[str]] = {}
    variables: dict[str, str] = {}
    exported: list[tuple[str, str]] = []  # (enum python name, scope var)
    sources = sorted((ROOT / version / "python-bindings" / "src").rglob("*.cpp"))
    statements = [s for path in sources for s in _statements(_strip(path.read_text()))]
    for statement in statements:
        head = _HEAD.search(statement)
        if head and not statement[:head.start()].strip():
            types = _template_types(head.group("targs"))
            name = head.group("name")
            cpp_to_py[types[0].split("::")[-1] if head.group(1) == "enum_" else types[0]] = name
            bases[name] = types[1:]
            attrs = api.setdefault(name, set())
            attrs.update(m.group(2) for m in _CHAIN.finditer(statement[head.end():]))
            if head.group("var"):
                variables[head.group("var")] = name
            scope = head.group("scope")
            if scope != "m":
                exported.append((name, scope))
                if ".export_values()" in statement:
                    exported.append((name + "!values", scope))
            continue
        module_def = re.match(r"\s*m\.(def|attr|add_object)\s*\(\s*\"(\w+)\"", statement)
        if module_def:
            api[""].add(module_def.group(2))
            continue
        var_def = re.match(r"\s*(\w+)\s*\.(def|def_property|def_property_readonly|def_readwrite)", statement)
        if var_def and var_def.group(1) in variables:
            api[variables[var_def.group(1)]].update(m.group(2) for m in _CHAIN.finditer(statement))
    for name, scope in exported:
        parent = variables.get(scope)
        if parent is None:
            continue
        if name.endswith("!values"):
            api[parent].update(api[name[:-7]])
        else:
            api[parent].add(name)
    for name in list(api):
        api[""].add(name) if name else None
    # inheritance (bases bound earlier or later), a few levels deep
    for _ in range(4):
        for name, types in bases.items():
            for base in types:
                base_py = cpp_to_py.get(base)
                if base_py and base_py in api:
                    api[name] |= api[base_py]
    return {k: frozenset(v) for k, v in api.items()}


@functools.lru_cache(maxsize=None)
def header_enum(version: str, name: str) -> dict[str, int]:
    """``{MEMBER: value}`` (the ``k`` prefix dropped) of ``enum class <name>`` in the headers."""
    for header in sorted((ROOT / version / "include").glob("*.h")):
        text = _strip(header.read_text())
        match = re.search(rf"enum\s+class\s+{name}\s*:\s*\w+\s*\{{(.*?)\}};", text, re.S)
        if not match:
            continue
        values: dict[str, int] = {}
        nxt = 0
        for entry in (e.strip() for e in match.group(1).split(",")):
            if not entry:
                continue
            parts = re.match(r"k(\w+)(?:\s+TRT_DEPRECATED_ENUM)?\s*(?:=\s*(\w+))?", entry)
            member, value = parts.group(1), parts.group(2)
            if value is None:
                current = nxt
            elif value.lstrip("-").isdigit():
                current = int(value)
            else:
                current = values[value[1:]]
            values[member] = current
            nxt = current + 1
        return values
    raise KeyError(f"enum class {name} not found in TensorRT {version} headers")
