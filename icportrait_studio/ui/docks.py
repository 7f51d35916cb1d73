"""The main window's docks: building them, and keeping scrolled docks wide enough for their content."""

from __future__ import annotations

from PySide6.QtCore import QEvent, Qt
from PySide6.QtWidgets import QDockWidget, QMainWindow, QScrollArea, QVBoxLayout, QWidget

from icportrait_studio.ui.wheel_guard import guard_wheel


class DocksMixin:
    """Expects the panels MainWindow creates (light_panel, view_panel, layers_panel, ...)."""

    def _dock(self, title: str, name: str, widget: QWidget, area: Qt.DockWidgetArea,
              scroll: bool = False, margin: int = 0) -> QDockWidget:
        win: QMainWindow = self  # type: ignore[assignment]
        dock = QDockWidget(title, win)
        dock.setObjectName(name)
        if margin:
            padded = QWidget(dock)
            lay = QVBoxLayout(padded)
            lay.setContentsMargins(margin, margin, margin, margin)
            lay.addWidget(widget)
            widget = padded
        if scroll:
            holder = QScrollArea(dock)
            holder.setWidgetResizable(True)
            holder.setFrameShape(QScrollArea.Shape.NoFrame)
            holder.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
            holder.setWidget(widget)
            guard_wheel(widget, holder)
            self._scrolled.append((holder, widget))
            widget.installEventFilter(win)
            widget = holder
        dock.setWidget(widget)
        win.addDockWidget(area, dock)
        self._docks.append(dock)
        return dock

    def _build_docks(self) -> None:
        win: QMainWindow = self  # type: ignore[assignment]
        w = self  # type: ignore[assignment]
        self._docks: list[QDockWidget] = []
        self._scrolled: list[tuple[QScrollArea, QWidget]] = []
        right, left = Qt.DockWidgetArea.RightDockWidgetArea, Qt.DockWidgetArea.LeftDockWidgetArea
        self.light_dock = self._dock("Light", "lightDock", w.light_panel, right, scroll=True)  # type: ignore[attr-defined]
        self.view_dock = self._dock("View", "viewDock", w.view_panel, right, margin=8)  # type: ignore[attr-defined]
        self.layers_dock = self._dock("Layers", "layersDock", w.layers_panel, left)  # type: ignore[attr-defined]
        self.history_dock = self._dock("History", "historyDock", w.history_panel, left)  # type: ignore[attr-defined]
        self.props_dock = self._dock("Properties", "propsDock", w.props_panel, left)  # type: ignore[attr-defined]
        self.jobs_dock = self._dock("Jobs", "jobsDock", w.jobs_panel, left)  # type: ignore[attr-defined]
        win.tabifyDockWidget(self.history_dock, self.props_dock)
        win.tabifyDockWidget(self.props_dock, self.jobs_dock)
        self.history_dock.raise_()
        win.resizeDocks([self.light_dock, self.view_dock], [640, 200], Qt.Orientation.Vertical)
        win.resizeDocks([self.layers_dock, self.history_dock], [220, 480], Qt.Orientation.Vertical)
        win.resizeDocks([self.light_dock, self.layers_dock], [340, 300], Qt.Orientation.Horizontal)

    def _fit_scrolled_docks(self) -> None:
        """Scrolled docks (the light panel) must never clip their content sideways; their minimum width
        is only known once style and fonts apply, and grows when a label does (the source light)."""
        for holder, widget in self._scrolled:
            need = widget.minimumSizeHint().width() + holder.verticalScrollBar().sizeHint().width() + 4
            if holder.minimumWidth() != need:
                holder.setMinimumWidth(need)

    def showEvent(self, event) -> None:  # type: ignore[no-untyped-def]
        super().showEvent(event)  # type: ignore[misc]
        self._fit_scrolled_docks()

    def eventFilter(self, obj, event) -> bool:  # type: ignore[no-untyped-def]
        if event.type() == QEvent.Type.LayoutRequest and any(obj is w for _h, w in self._scrolled):
            self._fit_scrolled_docks()
        return super().eventFilter(obj, event)  # type: ignore[misc]
