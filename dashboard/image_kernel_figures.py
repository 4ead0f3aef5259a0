"""Figures of the image-kernels page: accuracy against depth, kernel heatmap, confusion matrix,
misclassified thumbnails. Builders take arrays and return plotly Figures."""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .figures import COLORS, Style, new_figure

SERIES_COLORS = {
    "CNTK-GAP": COLORS["ntk"], "CNTK-V": "#6baed6", "CNN-GP-GAP": COLORS["nngp"], "CNN-GP-V": "#c5b0d5",
    "FC NTK": COLORS["truth"], "CNN-GAP (SGD)": COLORS["net"], "CNN-V (SGD)": "#ffbb78",
}


def accuracy_figure(depths, series: dict, *, style: Style) -> go.Figure:
    """Test accuracy (%) against depth for each method in `series` (name -> accuracies in [0, 1])."""
    fig = new_figure("Test accuracy against depth", "conv layers (paper's depth − 1)", "test accuracy (%)",
                     style=style)
    for name, acc in series.items():
        acc = np.asarray(acc, float)
        dash = "dot" if "SGD" in name else ("dash" if "GP" in name else None)
        fig.add_trace(go.Scatter(x=np.asarray(depths)[: len(acc)], y=100 * acc, name=name,
                                 mode="lines+markers", line={"color": SERIES_COLORS.get(name), "dash": dash,
                                                             "width": style.line_width}))
    fig.update_xaxes(dtick=1)
    return fig


def kernel_heatmap(k, labels, *, style: Style, title: str) -> go.Figure:
    """Normalized kernel K(x, x') / sqrt(K(x, x) K(x', x')) of test images sorted by class."""
    d = np.sqrt(np.clip(np.diag(k), 1e-300, None))
    kn = k / d[:, None] / d[None, :]
    fig = new_figure(title, "test image (sorted by class)", "test image (sorted by class)", style=style)
    ticks = [int(np.flatnonzero(labels == c)[0]) for c in np.unique(labels)]
    fig.add_trace(go.Heatmap(z=kn, colorscale="Viridis", colorbar={"title": "K̄"}))
    fig.update_xaxes(tickvals=ticks, ticktext=[str(labels[t]) for t in ticks])
    fig.update_yaxes(tickvals=ticks, ticktext=[str(labels[t]) for t in ticks], autorange="reversed")
    return fig


def confusion_figure(m, class_names, *, style: Style, title: str) -> go.Figure:
    fig = new_figure(title, "predicted class", "true class", style=style)
    names = [str(c) for c in class_names]
    fig.add_trace(go.Heatmap(z=m, x=names, y=names, colorscale="Blues", text=m, texttemplate="%{text}",
                             colorbar={"title": "images"}))
    fig.update_yaxes(autorange="reversed", type="category")
    fig.update_xaxes(type="category")
    return fig


def thumbnails_figure(images, titles, *, style: Style, cols: int | None = None) -> go.Figure:
    """Grey thumbnails (n, H, W) with square pixels and a title each (true, predicted, scores),
    the scores on a second line; up to 6 per row, 4 in presentation mode (so the titles can be
    projector-sized), fewer when there are fewer images."""
    n = len(images)
    cols = max(1, min(cols or (4 if style.presentation else 6), n))
    small = style.font_size if style.presentation else max(9, style.font_size - 5)
    rows = max(1, -(-n // cols))
    height = (200 if style.presentation else 130) * rows + 80
    titles = [str(t).replace(" (", "<br>(", 1) for t in titles]
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=titles + [""] * (rows * cols - n),
                        horizontal_spacing=0.02,
                        vertical_spacing=min(0.3, 3.4 * small / height) if rows > 1 else 0.0)
    for k, img in enumerate(images):
        fig.add_trace(go.Heatmap(z=img, colorscale="Greys", reversescale=True, showscale=False),
                      row=k // cols + 1, col=k % cols + 1)
    for k in range(1, rows * cols + 1):  # square pixels: each image keeps its aspect ratio
        suffix = "" if k == 1 else str(k)
        fig.layout[f"yaxis{suffix}"].update(scaleanchor=f"x{suffix}", constrain="domain", constraintoward="top")
        fig.layout[f"xaxis{suffix}"].update(constrain="domain")
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False, autorange="reversed")
    c = style.colors  # the theme's opaque background and text colour, as apply_style gives the others
    fig.update_layout(template=style.template, height=height, margin={"t": 40 + 3 * small, "b": 10},
                      paper_bgcolor=c["paper"], plot_bgcolor=c["plot"],
                      font={"size": style.font_size if style.presentation else max(10, style.font_size - 4),
                            "color": c["text"]},
                      title={"text": "Misclassified test images", "font": {"color": c["text"], "size": style.title_size},
                             "x": 0.0, "xanchor": "left", "xref": "container", "pad": {"l": 8}})
    fig.update_annotations(font_size=small, font_color=c["text"])
    return fig
