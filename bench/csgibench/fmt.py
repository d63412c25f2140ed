"""Number formats shared by the Markdown and the SVG (pure)."""

def k(x):
    if x is None:
        return "-"
    if x >= 1e6:
        return "%.2fM" % (x / 1e6)
    if x >= 1e4:
        return "%.1fk" % (x / 1e3)
    if x >= 1e3:
        return "%.2fk" % (x / 1e3)
    return ("%.3g" % x) if x < 100 else ("%.0f" % x)


def short(x):
    """A bar label that fits in 30 px."""
    if x >= 1e5:
        return "%.0fk" % (x / 1e3)
    return k(x)


def ms(us):
    return "-" if us is None else ("%.2f" % (us / 1000.0))


def pct(x):
    return "-" if x is None else "%.0f %%" % (100 * x)


def esc(s):
    return str(s).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
