"""Every journey drawn as a Mermaid state diagram in docs/flows/<flow>.md, from its FlowSpec.

Written by hand rather than by transitions' diagram extension so that the output is stable
(sorted, no timestamps) and a test can compare it with the committed files."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from helpline.flowkit import GOTO, FlowSpec

DEFAULT_OUT = Path(__file__).resolve().parent.parent / "docs" / "flows"


def _node(name: str) -> str:
    """A Mermaid-safe id for a state or a jump to another journey."""
    if name.startswith(GOTO):
        return "to_" + name[len(GOTO) :].replace(".", "_")
    return "s_" + name  # a prefix keeps Mermaid's reserved words ("end") out of ids


def render(spec: FlowSpec) -> str:
    """The Markdown page for one journey: a short legend and the diagram."""
    lines = [
        f"# Journey: {spec.name}",
        "",
        "Generated from `flows/" + spec.name + ".py` by `python run.py diagrams`; do not edit.",
        "Edges are triggers (an option chosen, or text understood); edges marked (moves on)",
        "are where a state decides by itself; `to_<flow>` boxes hand over to another journey.",
        "",
        "```mermaid",
        "stateDiagram-v2",
        f"    [*] --> {_node(spec.initial)}",
    ]
    gotos: set[str] = set()
    for state in spec.states:
        keys = ", ".join(state.say) or "(actions only)"
        lines.append(f'    state "{state.name}<br/>{keys}" as {_node(state.name)}')
    edges: list[str] = []
    for t in spec.transitions:
        sources = t["source"] if isinstance(t["source"], list | tuple) else [t["source"]]
        dest = str(t["dest"])
        if dest.startswith(GOTO):
            gotos.add(dest)
        for source in sources:
            edges.append(f"    {_node(str(source))} --> {_node(dest)}: {t['trigger']}")
    for state in spec.states:
        for dest in state.exits:
            if dest.startswith(GOTO):
                gotos.add(dest)
            edges.append(f"    {_node(state.name)} --> {_node(dest)}: (moves on)")
    for goto in sorted(gotos):
        lines.append(f'    state "{goto[len(GOTO) :]}" as {_node(goto)}')
    lines += edges
    lines += ["```", ""]
    return "\n".join(lines)


def diagrams(flows: Iterable[FlowSpec]) -> dict[str, str]:
    """File name -> Markdown, for every journey."""
    return {f"{spec.name}.md": render(spec) for spec in flows}


def write_diagrams(
    out_dir: Path = DEFAULT_OUT, flows: Iterable[FlowSpec] | None = None
) -> list[Path]:
    """Write docs/flows/<flow>.md for every journey; the paths written."""
    if flows is None:
        import flows as journeys  # the composition root's journeys; helpline/ never needs them

        flows = journeys.ALL
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in diagrams(flows).items():
        path = out_dir / name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written
