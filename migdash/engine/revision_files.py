"""Text that becomes part of a revision file never becomes code.

A revision or merge request carries a message, a head, branch labels and
``depends_on``; Alembic renders them into a Python file through the
project's ``script.py.mako``, and that file is imported right afterwards.
Two defences, in order:

1. :func:`check_revision_request` (request time, any process): revision
   references must resolve in the project's graph, labels are plain names,
   and the message holds no NUL, carriage return or other control character.
2. :func:`verified_revision_files` (the child process that writes the file):
   the message is escaped for a Python string literal, and every file Alembic
   renders is parsed with :mod:`ast` *before* Alembic imports it, and compared
   with the same template rendered around a harmless placeholder.  If the
   message changed the file's structure (left its literal, added a
   statement) or a field is not what was asked, the file is removed and the
   job fails saying why.
"""

from __future__ import annotations

import ast
import re
import secrets
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import util as alembic_util
from alembic.script import ScriptDirectory

from migdash.engine.graph import RevisionGraph
from migdash.errors import InvalidInput, UnsafeRevisionFile

MAX_MESSAGE = 1000
LABEL = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]{0,99}$")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def check_message(raw: Any) -> str:
    """A revision message: 1–1000 characters, newlines and tabs allowed, no control characters."""
    if not isinstance(raw, str) or not raw.strip():
        raise InvalidInput(
            "a message is required", hint="Say what the revision does.", field="message"
        )
    message: str = raw.strip()
    if len(message) > MAX_MESSAGE:
        raise InvalidInput(
            f"the message is {len(message)} characters long; at most {MAX_MESSAGE}",
            field="message",
        )
    bad = _CONTROL.search(message)
    if bad:
        raise InvalidInput(
            f"the message contains the control character {bad.group()!r}",
            hint="Use plain text; newlines and tabs are allowed.",
            field="message",
        )
    return message


def check_label(label: Any, graph: RevisionGraph) -> str | None:
    """A new branch label: a plain name that no revision of the project uses yet."""
    if label is None or label == "":
        return None
    if not isinstance(label, str) or not LABEL.match(label):
        raise InvalidInput(
            f"branch label {label!r} is not allowed",
            hint="Use 1–100 letters, digits, '_', '.' or '-'.",
            field="branch_label",
        )
    if label in graph.labels:
        raise InvalidInput(
            f"branch label {label!r} is already used by revision {graph.labels[label]}",
            field="branch_label",
        )
    return label


def check_reference(raw: Any, graph: RevisionGraph, field: str) -> str:
    """A revision the project has (an id, a unique prefix, a label or ``label@head``)."""
    if not isinstance(raw, str) or not raw.strip():
        raise InvalidInput(f"{field}: a revision id or label is required", field=field)
    value: str = raw.strip()
    if len(value) > 200 or _CONTROL.search(value):
        raise InvalidInput(f"{field}: {value[:40]!r}… is not a revision", field=field)
    graph.resolve(value)  # raises UnknownRevision / AmbiguousHead with the reason
    return value


def check_revision_request(
    graph: RevisionGraph, kind: str, arguments: dict[str, Any]
) -> dict[str, Any]:
    """The arguments of a merge or revision request, checked and normalised."""
    message = check_message(arguments.get("message"))
    if kind == "merge":
        heads = [check_reference(h, graph, "heads") for h in arguments.get("heads") or []]
        heads = heads or list(graph.heads)
        if len(heads) < 2:
            raise InvalidInput(
                "a merge needs at least two heads",
                hint=f"The project's heads: {', '.join(graph.heads) or 'none'}",
                field="heads",
            )
        for name in heads:
            if name not in graph.heads:
                raise InvalidInput(f"{name} is not a head of the project", field="heads")
        return {"message": message, "heads": heads}
    head: str | None = arguments.get("head") or None
    depends = arguments.get("depends_on") or []
    if isinstance(depends, str):
        depends = [d for d in depends.split(",") if d.strip()]
    return {
        "message": message,
        "head": check_reference(head, graph, "head") if head else None,
        "branch_label": check_label(arguments.get("branch_label"), graph),
        "depends_on": [check_reference(d, graph, "depends_on") for d in depends],
        "autogenerate": bool(arguments.get("autogenerate")),
    }


def escape_for_literal(message: str) -> str:
    """The message as it must appear inside a Python string literal of any quote style."""
    return message.replace("\\", "\\\\").replace('"', '\\"').replace("'", "\\'")


@contextmanager
def verified_revision_files(message: str) -> Iterator[None]:
    """While the block runs, every revision file Alembic renders is checked before use.

    Alembic's ``generate_revision`` renders the template and then imports
    the new file; the check runs in between, through the one method that
    renders it.
    """
    original = ScriptDirectory._generate_template  # noqa: SLF001

    def generate(self: ScriptDirectory, src: Path, dest: Path, **kw: Any) -> None:
        original(self, src, dest, **kw)
        try:
            verify_rendered_file(src, Path(dest), kw, message, self.output_encoding)
        except Exception:
            Path(dest).unlink(missing_ok=True)
            raise

    ScriptDirectory._generate_template = generate  # type: ignore[method-assign]  # noqa: SLF001
    try:
        yield
    finally:
        ScriptDirectory._generate_template = original  # type: ignore[method-assign]  # noqa: SLF001


def verify_rendered_file(
    template: Path, written: Path, kw: dict[str, Any], message: str, encoding: str
) -> None:
    """Raise :class:`UnsafeRevisionFile` unless *written* is the template with *message* as text.

    Renders the template again around a random placeholder, replaces the
    placeholder by the message in that file's string constants, and requires
    both syntax trees to be identical: so the message can only ever be the
    value of the string literals the template puts it in.
    """
    placeholder = f"MIGDASHMESSAGE{secrets.token_hex(8)}"
    actual = _parse(written.read_text(encoding=encoding), written)
    with tempfile.TemporaryDirectory(prefix="migdash-template-") as scratch:
        reference_file = Path(scratch) / "reference.py"
        alembic_util.template_to_file(
            template, reference_file, encoding, **{**kw, "message": placeholder}
        )
        reference = _parse(reference_file.read_text(encoding=encoding), template)
    reference = _SubstituteText(placeholder, message).visit(reference)
    if ast.dump(reference) != ast.dump(actual):
        raise UnsafeRevisionFile(
            f"the message changed the structure of {written.name}: it would not be "
            "plain text in the file (it closes a string or a comment line); the file "
            "was removed"
        )
    _check_fields(actual, kw, written)


def _parse(text: str, path: Path) -> ast.Module:
    try:
        return ast.parse(text)
    except SyntaxError as exc:
        raise UnsafeRevisionFile(
            f"{path.name} would not be valid Python (line {exc.lineno}: {exc.msg}); "
            "the file was removed"
        ) from None


class _SubstituteText(ast.NodeTransformer):
    def __init__(self, placeholder: str, message: str) -> None:
        self.placeholder, self.message = placeholder, message

    def visit_Constant(self, node: ast.Constant) -> ast.Constant:  # noqa: N802 - ast API
        if isinstance(node.value, str) and self.placeholder in node.value:
            return ast.copy_location(
                ast.Constant(node.value.replace(self.placeholder, self.message)), node
            )
        return node


FIELDS = {
    "revision": "up_revision",
    "down_revision": "down_revision",
    "branch_labels": "branch_labels",
    "depends_on": "depends_on",
}


def _check_fields(tree: ast.Module, kw: dict[str, Any], written: Path) -> None:
    """``revision``, ``down_revision``, ``branch_labels``, ``depends_on`` say what was asked."""
    found: dict[str, Any] = {}
    for node in tree.body:
        name, value = _assignment(node)
        if name in FIELDS:
            if name in found:
                raise UnsafeRevisionFile(f"{written.name} assigns {name} twice; removed")
            try:
                found[name] = ast.literal_eval(value) if value is not None else None
            except ValueError:
                raise UnsafeRevisionFile(
                    f"{written.name}: {name} is not a literal; the file was removed"
                ) from None
    for name, key in FIELDS.items():
        if name in found and _norm(found[name]) != _norm(kw.get(key)):
            raise UnsafeRevisionFile(
                f"{written.name}: {name} is {found[name]!r}, not {kw.get(key)!r} as asked; "
                "the file was removed"
            )
    if "revision" not in found:
        raise UnsafeRevisionFile(f"{written.name} declares no revision; the file was removed")


def _assignment(node: ast.stmt) -> tuple[str | None, ast.expr | None]:
    if isinstance(node, ast.Assign) and len(node.targets) == 1:
        target = node.targets[0]
        return (target.id if isinstance(target, ast.Name) else None), node.value
    if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
        return node.target.id, node.value
    return None, None


def _norm(value: Any) -> tuple[str, ...]:
    """None, "", a string and a sequence of strings, compared as tuples."""
    return tuple(str(v) for v in alembic_util.to_tuple(value, default=()) if v is not None)
