"""What the drawing tools share (tools/figures.py, tools/label_figures.py): matplotlib's Figure
when it is installed, the figures' resolution, and writing a figure as a PNG that may later be
drawn again in its place (and no other file of that name is ever overwritten)."""
import io
import os
import sys

from PIL import Image, PngImagePlugin

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # the repo root
from utils.checkpoint import atomic_write  # noqa: E402 (after the path line above)
from utils.cli import InputError, import_problem, optional_package_said  # noqa: E402

# The tools say in one line when matplotlib is missing or broken; reading runs needs none
# (utils/runs.py)
MATPLOTLIB_PROBLEM = import_problem('matplotlib.figure')
Figure = None
if MATPLOTLIB_PROBLEM is None:
    from matplotlib.figure import Figure

DPI = 100  # figure sizes are in inches: (12, 8) is 1200 x 800 pixels
# Written into every PNG drawn here: a figure carrying it may be drawn again in its place, any
# other file of the same name is never overwritten.
SOFTWARE = 'DivideMix tools/figures.py'


def refuse_without_matplotlib():
    if Figure is None:
        raise InputError(optional_package_said('matplotlib', 'matplotlib.figure',
                                               'drawing needs',
                                               problem=MATPLOTLIB_PROBLEM or 'not installed'))


def save_png(fig, path):
    """Write the figure as a 256-colour PNG through a temporary file and a rename. The palette
    keeps a grid of photos at a few hundred KB (plain RGB PNG: over 1 MB)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format='png', dpi=DPI, facecolor='white')
    image = Image.open(buffer).convert('RGB').quantize(256)
    mark = PngImagePlugin.PngInfo()
    mark.add_text('Software', SOFTWARE)
    atomic_write(lambda f: image.save(f, format='png', optimize=True, pnginfo=mark), path)
    print(path)
    return path


def drawn_here(path):
    """Whether the file at `path` is a figure save_png wrote (and may be drawn again)."""
    try:
        with Image.open(path) as image:
            return image.format == 'PNG' and image.text.get('Software') == SOFTWARE
    except (OSError, ValueError):  # not an image, or not readable
        return False
