"""Checks of csgi-bench's results.html against the run's results.md and results.svg, shared
by test_units.py (the committed baselines) and smoke.py (real runs).

report_problems(html, md, svg) returns what is wrong, [] when nothing: the file must be
well-formed (every element closed, in order: python's html.parser sees the tags), stand
alone (no script, no element or attribute that loads anything, no URL but the SVG
namespace), hold every table of the Markdown cell for cell, the SVG chart inline with all
its bars and texts, and the method and the machine.
"""

import html.parser
import re
import xml.etree.ElementTree as ET

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source",
        "track", "wbr"}
# Elements that load or run something, and attributes that name something to load.
LOADING_TAGS = {"script", "link", "img", "iframe", "frame", "object", "embed", "base", "video",
                "audio", "source", "image", "use", "foreignobject", "form", "portal"}
LOADING_ATTRS = {"src", "href", "xlink:href", "srcset", "action", "formaction", "data",
                 "poster", "background", "manifest", "ping", "codebase", "cite", "longdesc"}
SVG_NS = "http://www.w3.org/2000/svg"


class Page(html.parser.HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.problems = []
        self.stack = []
        self.doctype = False
        self.tables = []  # [[cell texts of a row], ...] per table
        self.h2 = []
        self.svg_count = 0
        self.svg_rects = 0
        self.svg_texts = []
        self._row = None
        self._cell = None
        self._in_svg_text = None
        self._h2 = None
        self._kv = []

    def handle_decl(self, decl):
        self.doctype = self.doctype or decl.lower() == "doctype html"

    def _attrs(self, tag, attrs):
        if tag in LOADING_TAGS:
            self.problems.append("element <%s> loads or runs something" % tag)
        for name, value in attrs:
            value = value or ""
            if name in LOADING_ATTRS:
                self.problems.append("<%s %s=%r>: a reference" % (tag, name, value))
            if name.startswith("on"):
                self.problems.append("<%s %s>: an event handler" % (tag, name))
            if "url(" in value.lower() or "@import" in value.lower():
                self.problems.append("<%s %s=%r>: url() or @import" % (tag, name, value))
            if re.search(r"(https?|ftp|file|data|javascript):|//", value, re.I) and not (
                    tag == "svg" and name == "xmlns" and value == SVG_NS):
                self.problems.append("<%s %s=%r>: a URL" % (tag, name, value))

    def handle_starttag(self, tag, attrs):
        self._attrs(tag, attrs)
        if tag not in VOID:
            self.stack.append(tag)
        self._open(tag)

    def handle_startendtag(self, tag, attrs):
        # <line .../> and <rect .../> in the SVG: an element with no content.
        self._attrs(tag, attrs)
        self._open(tag)

    def _open(self, tag):
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self._row = []
        elif tag in ("td", "th"):
            self._cell = []
        elif tag == "h2":
            self._h2 = []
        elif tag == "svg":
            self.svg_count += 1
        elif tag == "rect" and "svg" in self.stack:
            self.svg_rects += 1
        elif tag == "text" and "svg" in self.stack:
            self._in_svg_text = []

    def handle_endtag(self, tag):
        if tag in VOID:
            return
        if not self.stack or self.stack[-1] != tag:
            self.problems.append("</%s> closes <%s>" % (tag, self.stack[-1] if self.stack
                                                         else "nothing"))
            return
        self.stack.pop()
        if tag in ("td", "th") and self._cell is not None and self._row is not None:
            self._row.append(" ".join("".join(self._cell).split()))
            self._cell = None
        elif tag == "tr" and self._row is not None and self.tables:
            self.tables[-1].append(self._row)
            self._row = None
        elif tag == "h2" and self._h2 is not None:
            self.h2.append("".join(self._h2).strip())
            self._h2 = None
        elif tag == "text" and self._in_svg_text is not None:
            self.svg_texts.append("".join(self._in_svg_text))
            self._in_svg_text = None

    def handle_data(self, data):
        if self.stack and self.stack[-1] == "style" and re.search(r"url\(|@import", data, re.I):
            self.problems.append("the style sheet loads something")
        for part in (self._cell, self._h2, self._in_svg_text):
            if part is not None:
                part.append(data)


def md_tables(md):
    """Each Markdown table as rows of cell texts (the alignment row left out, `code` and
    **bold** as their text)."""
    tables, cur = [], None
    for line in md.splitlines() + [""]:
        if line.startswith("|"):
            if cur is None:
                cur = []
            if not re.match(r"^\|[\s:|-]+\|$", line):
                cells = [c.strip() for c in line.strip().strip("|").split(" | ")]
                cur.append([" ".join(c.replace("**", "").replace("`", "").split())
                            for c in cells])
        elif cur is not None:
            tables.append(cur)
            cur = None
    return tables


def report_problems(page_html, md, svg):
    p = Page()
    p.feed(page_html)
    p.close()
    problems = list(p.problems)
    if not p.doctype:
        problems.append("no <!DOCTYPE html>")
    if p.stack:
        problems.append("elements left open: %s" % p.stack)
    want = md_tables(md)
    if not want:
        problems.append("the Markdown has no table")
    # The Markdown's tables come first, in order; then the machine and the targets tables.
    if p.tables[:len(want)] != want:
        problems.append("the tables differ from results.md's: %r vs %r"
                        % (p.tables[:len(want)][:1], want[:1]))
    if len(p.tables) != len(want) + 2:
        problems.append("%d tables, want %d (results.md's, the machine, the targets)"
                        % (len(p.tables), len(want) + 2))
    root = ET.fromstring(svg)
    rects = len(root.findall(".//{%s}rect" % SVG_NS))
    texts = ["".join(t.itertext()) for t in root.iter("{%s}text" % SVG_NS)]
    if p.svg_count != 1:
        problems.append("%d <svg> charts, want 1" % p.svg_count)
    if p.svg_rects != rects or p.svg_texts != texts:
        problems.append("the inline chart differs from results.svg (%d rects, want %d; "
                        "%d texts, want %d)" % (p.svg_rects, rects, len(p.svg_texts),
                                                len(texts)))
    for h in ("Chart", "Results", "Method", "Machine and settings", "Targets"):
        if h not in p.h2:
            problems.append("no section %r" % h)
    return problems
