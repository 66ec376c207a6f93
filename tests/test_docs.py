"""
Checks that the documentation tells the truth about the code: every option of
C{twistd logsvc} is documented in C{docs/options.rst} and every documented
option exists; every document renders without a broken reference; every example
command of the README is well-formed, and the README's C{curl} examples reach
documented endpoints and are answered by the real Resource tree.

When one of these fails after adding an option: document it as a definition-list
term (C{``--name VALUE``} and a paragraph) in docs/options.rst.
"""

from __future__ import annotations

import contextlib
import getopt
import io
import re
import shlex
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from docutils import nodes
from docutils.core import publish_doctree
from docutils.utils import Reporter
from twisted.internet.defer import Deferred
from twisted.python import usage
from twisted.scripts.twistd import ServerOptions
from twisted.trial.unittest import SynchronousTestCase

from logsvc.cli import buildParser
from logsvc.testing import MemoryLogService

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
README = ROOT / "README.rst"

#: Programs the README's shell examples may run, beyond logsvc and twistd
#: (whose arguments are checked); for these only the quoting is checked.
OTHER_PROGRAMS = frozenset(
    {"python3", "python", "curl", "echo", "printf", "nc", "make", "logger", "sqlite3", "kill", "cat"}
)

#: The HTTP methods an endpoint is documented with: C{``GET /logs``}.
_ENDPOINT = re.compile(r"^(GET|POST|PUT|HEAD|DELETE) (/[^\s`]*)")


def parseDocument(path: Path) -> tuple[nodes.document, list[str]]:
    """
    @return: the docutils tree of the reStructuredText file at C{path}, and
        the warnings and errors docutils reported while reading it (a broken
        C{`Name`_} reference, a malformed table, an unterminated literal).
    """
    messages = io.StringIO()
    tree = publish_doctree(
        path.read_text(),
        source_path=str(path),
        settings_overrides={
            "report_level": Reporter.WARNING_LEVEL,
            "halt_level": Reporter.SEVERE_LEVEL + 1,
            "warning_stream": messages,
        },
    )
    # Unresolved references are reported only by the writer's transforms.
    problems = [line for line in messages.getvalue().splitlines() if line.strip()]
    for node in tree.findall(nodes.problematic):
        problems.append(f"{path.name}: unresolved: {node.astext()}")
    return tree, problems


def documents() -> list[Path]:
    """
    @return: every reStructuredText file of the documentation: the README,
        NEWS and everything in docs/.
    """
    return [README, ROOT / "NEWS.rst", *sorted(DOCS.glob("*.rst"))]


def pluginOptions() -> usage.Options:
    """
    @return: a fresh instance of the options class C{twistd logsvc} parses
        its command line with, found through the plugin as twistd finds it.
    """
    from twisted.plugins.logsvc_plugin import logsvc

    options: usage.Options = logsvc.options()
    return options


def optionNames(options: usage.Options) -> set[str]:
    """
    @return: the long option names (without C{--}) that C{options} accepts,
        less usage.Options' own C{--help} and C{--version}.
    """
    return {name.rstrip("=") for name in options.longOpt} - {"help", "version"}


def helpOptions() -> set[str]:
    """
    @return: the long options C{twistd logsvc --help} prints.
    """
    return set(re.findall(r"^\s+(?:-\w, )?--([\w-]+)", str(pluginOptions()), re.M)) - {"help", "version"}


def documentedOptions() -> list[str]:
    """
    @return: the options docs/options.rst documents: each definition-list term
        starting with C{``--name``}, in order.
    """
    tree, _ = parseDocument(DOCS / "options.rst")
    found = []
    for term in tree.findall(nodes.term):
        match = re.match(r"--([\w-]+)", term.astext())
        if match:
            found.append(match.group(1))
    return found


def cliOptions() -> set[str]:
    """
    @return: every long option of the C{logsvc} command and its subcommands.
    """
    names: set[str] = set()
    parsers = [buildParser()]
    while parsers:
        parser = parsers.pop()
        for action in parser._actions:
            names.update(s[2:] for s in action.option_strings if s.startswith("--"))
            choices = getattr(action, "choices", None)
            if isinstance(choices, dict):
                parsers.extend(choices.values())
    return names


def benchOptions() -> set[str]:
    """
    @return: every long option the scripts in bench/ declare.
    """
    names: set[str] = set()
    for script in (ROOT / "bench").glob("*.py"):
        names.update(re.findall(r"add_argument\(\s*\"--([\w-]+)\"", script.read_text()))
    return names


def documentedEndpoints() -> set[tuple[str, str]]:
    """
    @return: the C{(method, path)} pairs the reference documents, as inline
        literals such as C{``GET /logs``} or C{``POST /{index}/_bulk``}.
    """
    found = set()
    for path in DOCS.glob("*.rst"):
        tree, _ = parseDocument(path)
        for literal in tree.findall(nodes.literal):
            match = _ENDPOINT.match(literal.astext())
            if match:
                found.add((match.group(1), match.group(2).split("?")[0]))
    return found


def endpointDocumented(method: str, path: str, endpoints: set[tuple[str, str]]) -> bool:
    """
    @return: whether C{method path} is one of C{endpoints}, where a
        C{{name}} segment of a documented path stands for any one segment.
    """
    for documentedMethod, pattern in endpoints:
        regex = "".join(
            "[^/]+" if re.fullmatch(r"\{\w+\}", part) else re.escape(part)
            for part in re.split(r"(\{\w+\})", pattern)
        )
        if documentedMethod == method and re.fullmatch(regex, path):
            return True
    return False


def exampleCommands(path: Path) -> Iterator[str]:
    """
    @return: the shell commands of C{path}: the logical lines of its literal
        blocks (continued after a trailing C{\\}, C{|} or C{&&}), leaving out
        blocks of Python code, configuration and output lines (JSON); and its
        inline literals that run C{twistd}, C{logsvc} or C{curl}.
    """
    tree, _ = parseDocument(path)
    for literal in tree.findall(nodes.literal):
        if literal.astext().startswith(("twistd ", "logsvc ", "curl ")):
            yield literal.astext()
    for block in tree.findall(nodes.literal_block):
        text = block.astext()
        first = text.lstrip().split(None, 1)[0] if text.strip() else ""
        if first in {"from", "import", "@inlineCallbacks", "async", "def", "action(type=", "ingest"}:
            continue
        if first.startswith(("action(", "#")):
            continue
        logical = ""
        for line in text.splitlines():
            if not line.strip():
                continue
            logical += line.rstrip("\\").rstrip() + " "
            if line.rstrip().endswith(("\\", "|", "&&")):
                continue
            command = logical.strip()
            logical = ""
            if not command.startswith(("{", "[")):
                yield command
        if logical.strip():
            yield logical.strip()


def simpleCommands(command: str) -> list[list[str]]:
    """
    @return: the simple commands of a shell command line, split at C{|},
        C{&&}, C{;}, each without its redirections.
    @raise ValueError: when the line's quoting is malformed.
    """
    lexer = shlex.shlex(command, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    lexer.commenters = "#"
    tokens = list(lexer)
    commands: list[list[str]] = [[]]
    skipNext = False
    for token in tokens:
        if skipNext:
            skipNext = False
            continue
        if token in {"|", "&&", ";", "||"}:
            commands.append([])
        elif token in {">", ">>", "<", "2>&1", "2>"}:
            skipNext = token != "2>&1"
        elif token == "2>&1" or re.fullmatch(r"\d?>&\d", token):
            continue
        else:
            commands[-1].append(token)
    return [c for c in commands if c]


class OptionsDocumentedTests(SynchronousTestCase):
    """
    docs/options.rst and C{twistd logsvc --help} name the same options.
    """

    def test_helpListsEveryOption(self) -> None:
        """
        The help text prints every option the plugin accepts (so the check
        below, made against the help text, covers them all).
        """
        self.assertEqual(helpOptions(), optionNames(pluginOptions()))

    def test_everyOptionDocumented(self) -> None:
        """
        Every option of C{twistd logsvc --help} has its entry in docs/options.rst.
        """
        missing = helpOptions() - set(documentedOptions())
        self.assertEqual(missing, set(), "document these options in docs/options.rst")

    def test_everyDocumentedOptionExists(self) -> None:
        """
        Every option docs/options.rst documents is one C{twistd logsvc} accepts.
        """
        unknown = set(documentedOptions()) - helpOptions()
        self.assertEqual(unknown, set(), "docs/options.rst documents options twistd logsvc lacks")

    def test_documentedOnce(self) -> None:
        """
        docs/options.rst documents each option once.
        """
        names = documentedOptions()
        self.assertEqual(sorted({n for n in names if names.count(n) > 1}), [])

    def test_mentionedOptionsExist(self) -> None:
        """
        Every option mentioned in the docs as an inline literal (C{``--retain
        30d``}) is an option of C{twistd logsvc} or of the C{logsvc} command;
        in docs/benchmarks.rst, also of a bench script.
        """
        known = helpOptions() | cliOptions()
        unknown = []
        for path in documents():
            tree, _ = parseDocument(path)
            allowed = known | benchOptions() if path.name in {"benchmarks.rst", "NEWS.rst"} else known
            for literal in tree.findall(nodes.literal):
                match = re.match(r"--([\w-]+)", literal.astext())
                if match and match.group(1) not in allowed:
                    unknown.append(f"{path.name}: {literal.astext()}")
        self.assertEqual(unknown, [])


class DocumentsRenderTests(SynchronousTestCase):
    """
    Every document is valid reStructuredText with no broken reference.
    """

    def test_noWarnings(self) -> None:
        """
        docutils reads every document without a warning or error (a C{`Name`_}
        reference to a section that does not exist is one).
        """
        problems = []
        for path in documents():
            problems.extend(parseDocument(path)[1])
        self.assertEqual(problems, [])

    def test_localLinksResolve(self) -> None:
        """
        Every relative link (C{`Options <options.rst>`_}) names a file that
        exists, and a C{#section} anchor names a section of that file.
        """
        broken = []
        for path in documents():
            tree, _ = parseDocument(path)
            for reference in tree.findall(nodes.reference):
                target = reference.get("refuri", "")
                if not target or re.match(r"\w+:", target):
                    continue
                name, _, anchor = target.partition("#")
                linked = (path.parent / name).resolve() if name else path
                if not linked.exists():
                    broken.append(f"{path.name}: {target}")
                    continue
                if anchor:
                    sections = {
                        id_
                        for section in parseDocument(linked)[0].findall(nodes.section)
                        for id_ in section["ids"]
                    }
                    if anchor not in sections:
                        broken.append(f"{path.name}: {target} (no such section)")
        self.assertEqual(broken, [])

    def test_readmeIsAFrontPage(self) -> None:
        """
        The README stays a front page: at most about 250 lines, with exactly
        two commands in its Quick start.
        """
        text = README.read_text()
        self.assertLessEqual(len(text.splitlines()), 260)
        quick = text.split("Quick start\n-----------\n", 1)[1].split("\n----", 1)[0]
        blocks = re.findall(r"::\n\n((?:    .*\n)+)", quick)
        self.assertEqual(len(blocks), 2)

    def test_docsMapListsEveryDocument(self) -> None:
        """
        docs/index.rst links every document in docs/.
        """
        index = (DOCS / "index.rst").read_text()
        unlisted = [p.name for p in DOCS.glob("*.rst") if p.name != "index.rst" and f"<{p.name}>" not in index]
        self.assertEqual(unlisted, [])


class ReadmeCommandsTests(SynchronousTestCase):
    """
    The README's example commands are well-formed and true.
    """

    def commands(self) -> list[str]:
        found = list(exampleCommands(README))
        self.assertGreater(len(found), 10)
        return found

    def test_shellQuoting(self) -> None:
        """
        Every example command splits as the shell would (no unbalanced quote)
        and runs a program the README's readers have.
        """
        for command in self.commands():
            for argv in simpleCommands(command):
                program = argv[0].rsplit("/", 1)[-1]
                self.assertIn(program, OTHER_PROGRAMS | {"logsvc", "twistd", "pip"}, command)

    def test_logsvcCommands(self) -> None:
        """
        Every C{logsvc} example parses with the C{logsvc} command's own parser.
        """
        seen = 0
        for command in self.commands():
            for argv in simpleCommands(command):
                if argv[0] == "logsvc":
                    seen += 1
                    complaint = io.StringIO()
                    try:
                        with contextlib.redirect_stderr(complaint):
                            # --help would print the help and exit: only its existence counts.
                            buildParser().parse_args([a for a in argv[1:] if a != "--help"] or ["query"])
                    except SystemExit:
                        self.fail(f"logsvc rejects: {command}\n{complaint.getvalue()}")
        self.assertGreater(seen, 5)

    def test_twistdCommands(self) -> None:
        """
        Every C{twistd} example names twistd options twistd has, and options
        and values C{twistd logsvc} accepts.
        """
        seen = 0
        server = ServerOptions()
        for command in self.commands():
            for argv in simpleCommands(command):
                if argv[0].rsplit("/", 1)[-1] != "twistd":
                    continue
                seen += 1
                self.assertIn("logsvc", argv, command)
                at = argv.index("logsvc")
                try:
                    getopt.getopt(argv[1:at], server.shortOpt, server.longOpt)
                    # --help would print the help and exit: only its existence counts.
                    pluginOptions().parseOptions([a for a in argv[at + 1 :] if a != "--help"])
                except (getopt.GetoptError, usage.UsageError) as e:
                    self.fail(f"{command}: {e}")
        self.assertGreater(seen, 1)

    def test_curlReachesDocumentedEndpoints(self) -> None:
        """
        Every C{curl} example asks a documented endpoint, and the real
        Resource tree (over an in-memory store) answers it with a 2xx; one
        with a placeholder (C{<next ...>}) or a stream (C{-N}) is only checked
        against the documentation.
        """
        endpoints = documentedEndpoints()
        seen = 0
        for command in self.commands():
            pipeline = simpleCommands(command)
            stdin = None
            for argv in pipeline:
                if argv[0] == "printf" and len(argv) == 2:
                    stdin = argv[1].encode().decode("unicode_escape").encode()
                if argv[0] != "curl":
                    continue
                seen += 1
                method, url, headers, body, streams = self.readCurl(argv, stdin)
                split = urlsplit(url if "://" in url else "http://" + url)
                self.assertTrue(endpointDocumented(method, split.path, endpoints), f"undocumented: {command}")
                if streams or "<" in url:
                    continue
                status = self.request(method, split.path, parse_qsl(split.query), headers, body)
                self.assertTrue(200 <= status < 300, f"{status} for: {command}")
        self.assertGreater(seen, 3)

    def readCurl(self, argv: list[str], stdin: bytes | None) -> tuple[str, str, dict[str, str], bytes | None, bool]:
        method, url, body, streams = "GET", "", None, False
        headers: dict[str, str] = {}
        args = iter(argv[1:])
        for arg in args:
            if arg.startswith("-X"):
                method = arg[2:] or next(args)
            elif arg == "-H":
                name, _, value = next(args).partition(":")
                headers[name.strip().lower()] = value.strip()
            elif arg in {"-d", "--data", "--data-binary"}:
                data = next(args)
                body = stdin if data == "@-" else data.encode()
                if method == "GET":
                    method = "POST"
            elif arg.startswith("-") and not arg.startswith("--"):
                streams = streams or "N" in arg
            elif not arg.startswith("-"):
                url = arg
        return method, url, headers, body, streams

    def request(
        self, method: str, path: str, params: list[tuple[str, str]], headers: dict[str, str], body: bytes | None
    ) -> int:
        service = MemoryLogService()
        service.client().send({"message": "seed", "level": "error", "service": "api"})
        kwargs: dict[str, Any] = {"params": params, "headers": headers}
        if body is not None:
            kwargs["data"] = body
        d: Deferred[Any] = service.treq.request(method, "http://logsvc.test" + path, **kwargs)
        response = self.successResultOf(d)
        status: int = response.code
        return status


class ReadParametersDocumentedTests(SynchronousTestCase):
    """
    docs/api.rst lists exactly the parameters each read endpoint accepts.
    """

    def test_listsMatchCode(self) -> None:
        """
        The Parameters section names, per endpoint, the same parameters its
        resource accepts (so a parameter added to an endpoint is documented).
        """
        from logsvc.web.search import SEARCH_PARAMETERS
        from logsvc.web.stats import STATS_PARAMETERS
        from logsvc.web.tail import TAIL_PARAMETERS

        section = (DOCS / "api.rst").read_text().split("\nParameters\n----------\n", 1)[1].split("\n----", 1)[0]
        text = " ".join(section.split())
        for endpoint, accepted in (
            ("GET /logs", SEARCH_PARAMETERS),
            ("GET /logs/tail", TAIL_PARAMETERS),
            ("GET /stats", STATS_PARAMETERS),
        ):
            found = re.search(re.escape(f"``{endpoint}``") + r"(?: knows)? ``([a-z_ ]+)``", text)
            self.assertIsNotNone(found, endpoint)
            assert found is not None
            self.assertEqual(sorted(found.group(1).split()), sorted(accepted), endpoint)
