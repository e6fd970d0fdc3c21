"""Every `pipeline ...` command in the README and docs (shell blocks and text) exists, with the options named.

A renamed option or command leaves the docs' example failing for the user who copies it; this reads each
command line of every shell block (continuations joined) against the CLI's own parameter declarations.
"""

from __future__ import annotations

import re
import shlex

import typer

from pipeline.cli import app
from tests.e2e.test_doc_snippets import DOCS


def _commands() -> list[tuple[str, list[str]]]:
    out = []
    for doc in DOCS:
        for block in re.findall(r"```(?:bash|sh|shell|console)?\n(.*?)```", doc.read_text(), flags=re.S):
            for line in block.replace("\\\n", " ").splitlines():
                line = line.strip().removeprefix("$ ")
                if line.startswith("pipeline "):
                    out.append((doc.name, shlex.split(line.split(" #")[0], posix=True)[1:]))
        for span in re.findall(r"`(pipeline [^`]+)`", doc.read_text()):  # commands named in the text
            out.append((doc.name, span.replace("…", " ").replace("...", " ").split()[1:]))
    return out


def test_every_documented_command_and_option_exists() -> None:
    root = typer.main.get_command(app)
    found = _commands()
    assert len(found) > 50, len(found)
    problems, checked = [], 0
    for doc, words in found:
        cmd, ctx_words = root, []
        while getattr(cmd, "commands", None) and words and not words[0].startswith("-"):
            sub = cmd.commands.get(words[0])
            if sub is None:
                problems.append(f"{doc}: `pipeline {' '.join(ctx_words + words)}`: no command {words[0]!r}")
                break
            cmd, ctx_words, words = sub, ctx_words + [words[0]], words[1:]
        else:
            names = {o for p in cmd.params for o in (*p.opts, *p.secondary_opts)} | {"--help"}
            for w in words:
                opt = w.split("=")[0]
                checked += opt.startswith("--")
                if opt.startswith("--") and opt not in names and not re.fullmatch(r"--[A-Z_]+", opt):
                    problems.append(f"{doc}: `pipeline {' '.join(ctx_words)}` has no option {opt}")
    assert not problems, "\n".join(problems)
    assert checked > 80, checked  # the walk reached the commands' options
