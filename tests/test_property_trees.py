"""Property: for random call trees mixing the four callable kinds, tasks and threads,
the captured parent links are exactly the generated tree."""

from __future__ import annotations

import asyncio
import itertools
import threading
from collections.abc import AsyncGenerator, Generator
from dataclasses import dataclass
from typing import Literal

import anyio
import sniffio
import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tracekit
from tracekit.testing import capture

Kind = Literal["sync", "async", "gen", "agen"]
Via = Literal["call", "task", "thread"]
ASYNC_KINDS = ("async", "agen")


@dataclass(frozen=True)
class Node:
    """One tracked call; `via` is how its parent invokes it."""

    label: str
    kind: Kind
    via: Via
    children: tuple[Node, ...]


@st.composite
def _nodes(draw: st.DrawFn, depth: int, parent_is_async: bool) -> Node:
    kind: Kind = draw(st.sampled_from(["sync", "async", "gen", "agen"]))
    if parent_is_async:
        via: Via = draw(st.sampled_from(["call", "task", "thread"]))
    elif kind in ASYNC_KINDS:
        via = "thread"  # a sync body cannot await; it runs async work in a thread's own loop
    else:
        via = draw(st.sampled_from(["call", "thread"]))
    count = draw(st.integers(0, 3)) if depth > 0 else 0
    children = tuple(draw(_nodes(depth - 1, kind in ASYNC_KINDS)) for _ in range(count))
    return Node("", kind, via, children)


def _relabel(node: Node, counter: itertools.count[int]) -> Node:
    label = f"n{next(counter)}"
    children = tuple(_relabel(child, counter) for child in node.children)
    return Node(label, node.kind, node.via, children)


trees = st.builds(
    lambda root: _relabel(root, itertools.count()),
    _nodes(3, parent_is_async=False),
)


@tracekit.track
def between(label: str) -> None:
    """Work a consumer does between two items of a generator it consumes."""


@tracekit.track(ignore_arguments=["children"])
def sync_node(label: str, children: tuple[Node, ...]) -> None:
    for child in children:
        _invoke_from_sync(label, child)


@tracekit.track(ignore_arguments=["children"])
def gen_node(label: str, children: tuple[Node, ...]) -> Generator[str, None, None]:
    for child in children:
        _invoke_from_sync(label, child)
        yield child.label
    yield label


@tracekit.track(ignore_arguments=["children"])
async def async_node(label: str, children: tuple[Node, ...]) -> None:
    for child in children:
        await anyio.sleep(0)
        await _invoke_from_async(label, child)


@tracekit.track(ignore_arguments=["children"])
async def agen_node(label: str, children: tuple[Node, ...]) -> AsyncGenerator[str, None]:
    for child in children:
        await _invoke_from_async(label, child)
        yield child.label
        await anyio.sleep(0)
    yield label


def _call_sync(parent_label: str, node: Node) -> None:
    if node.kind == "sync":
        sync_node(node.label, node.children)
    elif node.kind == "gen":
        for _ in gen_node(node.label, node.children):
            between(f"{parent_label}/between/{node.label}")
    else:
        asyncio.run(_call_async(parent_label, node))


async def _call_async(parent_label: str, node: Node) -> None:
    if node.kind == "async":
        await async_node(node.label, node.children)
    elif node.kind == "agen":
        async for _ in agen_node(node.label, node.children):
            between(f"{parent_label}/between/{node.label}")
    else:
        _call_sync(parent_label, node)


def _invoke_from_sync(parent_label: str, node: Node) -> None:
    if node.via == "call":
        _call_sync(parent_label, node)
    elif int(node.label[1:]) % 2:
        thread = threading.Thread(target=tracekit.propagate(_call_sync), args=(parent_label, node))
        thread.start()
        thread.join()
    else:
        with tracekit.ThreadPoolExecutor(max_workers=1) as pool:
            pool.submit(_call_sync, parent_label, node).result()


async def _invoke_from_async(parent_label: str, node: Node) -> None:
    on_trio = sniffio.current_async_library() == "trio"
    if node.via == "call":
        await _call_async(parent_label, node)
    elif node.via == "task" and on_trio:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_call_async, parent_label, node)
    elif node.via == "task":
        await asyncio.create_task(_call_async(parent_label, node))
    elif on_trio:
        await trio.to_thread.run_sync(_call_sync, parent_label, node)
    else:
        with tracekit.ThreadPoolExecutor(max_workers=1) as pool:
            await asyncio.get_running_loop().run_in_executor(pool, _call_sync, parent_label, node)


def _expected_parents(node: Node, parent: str | None, into: dict[str, str | None]) -> None:
    into[node.label] = parent
    for child in node.children:
        _expected_parents(child, node.label, into)
        if child.kind in ("gen", "agen"):
            # one `between` call per yielded item: one per grandchild, plus the last
            for index in range(len(child.children) + 1):
                into[f"{node.label}/between/{child.label}#{index}"] = node.label


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(tree=trees, backend=st.sampled_from(["asyncio", "trio"]))
def test_captured_parent_links_equal_the_generated_tree(tree: Node, backend: str) -> None:
    """Every node's span has its tree parent's span as parent; between-item work the consumer's."""
    with capture() as captured:
        if tree.kind in ASYNC_KINDS:
            if backend == "trio":
                trio.run(_call_async, "test", tree)
            else:
                asyncio.run(_call_async("test", tree))
        else:
            _call_sync("test", tree)
    assert tracekit.current_span() is None

    label_of: dict[str, str] = {}
    seen_between: dict[str, int] = {}
    for span in captured.spans:
        label = span.input["label"]
        if span.name == "between":
            index = seen_between.get(label, 0)
            seen_between[label] = index + 1
            label = f"{label}#{index}"
        label_of[span.id] = label
    actual = {
        label_of[s.id]: (label_of[s.parent_id].split("/")[0] if s.parent_id else None)
        for s in captured.spans
    }
    expected: dict[str, str | None] = {}
    _expected_parents(tree, None, expected)
    # `between` calls made by the test itself (the root consumed as a generator) have no parent.
    for index in range(len(tree.children) + 1 if tree.kind in ("gen", "agen") else 0):
        expected[f"test/between/{tree.label}#{index}"] = None
    assert actual == expected, captured.tree()
    assert len({s.trace_id for s in captured.spans if s.name != "between"}) == 1
