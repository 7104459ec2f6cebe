"""The main window: the project list with health at a glance, one tab per concern,
menus and shortcuts, the job bar, in-window and tray notifications."""

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QSettings, QSize, Qt, QTimer, Signal
from PySide6.QtGui import (
    QAction,
    QCloseEvent,
    QColor,
    QDragEnterEvent,
    QDropEvent,
    QIcon,
    QKeySequence,
    QPainter,
    QPixmap,
)
from PySide6.QtWidgets import (
    QInputDialog,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QMainWindow,
    QMessageBox,
    QPushButton,
    QSplitter,
    QSystemTrayIcon,
    QTabWidget,
    QVBoxLayout,
    QWhatsThis,
    QWidget,
)

from app import RESOURCES, __version__
from app.core.domain.cards import ProjectHealth
from app.core.domain.data_files import DATA_FILE_SUFFIXES, file_dialog_filter
from app.core.domain.entities import AlertNotice, Project
from app.core.domain.results import ProjectStatus
from app.demo import DEMO_PROJECT
from app.frontends.gui import common, file_dialogs
from app.frontends.gui.common import HEALTH_COLORS, Banner, JobBar, fmt_value, setting_int, setting_text
from app.frontends.gui.controller import DEPLOY_KINDS, WRITE_KINDS, Controller
from app.frontends.gui.panels.activity import ActivityPanel
from app.frontends.gui.panels.alerts import AlertsPanel
from app.frontends.gui.panels.base import READS_QUEUE, Panel
from app.frontends.gui.panels.data import DataPanel
from app.frontends.gui.panels.deployments import DeploymentsPanel
from app.frontends.gui.panels.models import ModelsPanel
from app.frontends.gui.panels.monitoring import MonitoringPanel
from app.frontends.gui.panels.overview import OverviewPanel
from app.frontends.gui.recovery_actions import RecoveryActions

if TYPE_CHECKING:
    from app.core.services.lifecycle import Keel
    from app.frontends.gui.jobs import Job

DEFAULT_SIZE = QSize(1280, 820)  # a first start's window, where the screen has room for it
log = logging.getLogger("keel.ui")



def app_icon() -> QIcon:
    path = RESOURCES / "keel.svg"
    return QIcon(str(path)) if path.exists() else QIcon()


def dot_icon(color: str) -> QIcon:
    pixmap = QPixmap(14, 14)
    pixmap.fill(Qt.GlobalColor.transparent)
    painter = QPainter(pixmap)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    painter.setBrush(QColor(color))
    painter.setPen(Qt.PenStyle.NoPen)
    painter.drawEllipse(1, 1, 12, 12)
    painter.end()
    return QIcon(pixmap)


@dataclass(frozen=True)
class ProjectListReading:
    """What the project list shows, read on a worker: the projects, their health (a project that
    vanished meanwhile is left out), those seen for the first time, when the user looked (now), the
    newest alert's id and the alerts opened after the last one announced."""

    names: tuple[str, ...]
    health: tuple[ProjectHealth, ...]
    first_seen: tuple[str, ...]
    seen_at: str  # UTC, ISO 8601
    last_alert_id: int
    new_alerts: tuple[AlertNotice, ...]


def read_project_list(keel: "Keel", looked: dict[str, str], last_alert_id: int | None) -> ProjectListReading:
    """On a worker: every project's health (alerts counted since the user last looked at it), and
    the alerts opened after last_alert_id (or the last alert's id, when None: nothing to announce)."""
    now = keel.clock()
    names = keel.project_names()
    healths: list[ProjectHealth] = []
    for name in names:
        try:
            healths.append(keel.insights.health(name, since=looked.get(name) or now))
        except Exception:  # e.g. deleted by another process meanwhile: left out of the list
            log.exception("health of %s", name)
    if last_alert_id is None:
        last_alert_id, opened = keel.last_alert_id(), []
    else:
        opened = keel.open_alerts_after(last_alert_id)
    return ProjectListReading(names=tuple(names), health=tuple(healths),
                              first_seen=tuple(n for n in names if not looked.get(n)), seen_at=now,
                              last_alert_id=last_alert_id, new_alerts=tuple(opened))


class MainWindow(QMainWindow):
    open_workspace_requested = Signal(str)

    def __init__(self, controller: Controller, settings: QSettings, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.controller = controller
        self.settings = settings
        self.setObjectName("keelMainWindow")
        self.setWindowIcon(app_icon())
        self.setAcceptDrops(True)
        self._last_alert_id: int | None = None  # the newest alert announced (None: not read yet)
        self._reading_projects = False  # the project list is being read on a worker
        self._read_projects_again = False
        self._offer_demo = False
        self._closing = False
        self._shown_project = ""
        self._restoring_project = setting_text(settings, "last_project")
        self._update_title()
        self.named_actions = self._make_actions()
        self._make_menus()
        self.recovery_actions = RecoveryActions(self)  # File: verify, back up, restore, export/import project
        self._make_body()
        self.tray = self._make_tray()
        self.resize(DEFAULT_SIZE.boundedTo(self.screen().availableGeometry().size()))  # a first start on a small screen fits it
        geometry = settings.value("geometry")
        if geometry is not None:
            self.restoreGeometry(geometry)

        controller.keel_ready.connect(self._on_keel_ready)
        controller.window_filled = self.workspace_shown  # start-up work waits for the filled window
        controller.project_changed.connect(self._on_project_changed)
        controller.registry_changed.connect(self.refresh_projects)
        controller.jobs_changed.connect(self.update_actions)
        controller.runner.started.connect(self._show_job)
        controller.runner.progress.connect(self._show_job)
        controller.runner.busy_changed.connect(self._show_current_job)
        controller.notify.connect(self.notify)
        controller.error.connect(self.show_error)
        controller.demo_stream_changed.connect(lambda playing: self.update_actions())
        controller.overview_changed.connect(self.update_actions)
        self.update_actions()

    # ------------------------------------------------------------------ building
    def _action(self, text: str, slot: Callable[[], object] | Callable[[bool], object], shortcut: str | QKeySequence.StandardKey | None = None,
                tip: str = "") -> QAction:
        action = QAction(text, self)
        if shortcut is not None:
            action.setShortcut(QKeySequence(shortcut))
        action.setToolTip(tip or text.replace("&", "").rstrip("…"))
        action.triggered.connect(slot)
        return action

    def _make_actions(self) -> dict[str, QAction]:
        a = {
            "new_project": self._action("&New project…", self.new_project, QKeySequence.StandardKey.New,
                                        "Create a project from a data file"),
            "open_workspace": self._action("&Open workspace…", self.choose_workspace, QKeySequence.StandardKey.Open),
            "add_data": self._action("&Add data…", self.add_data, "Ctrl+I",
                                     "Add one or more files (Ctrl+click), each a labelled or unlabelled batch "
                                     "(validated, cleaned, versioned)"),
            "add_folder": self._action("Add data &folder…", self.add_data_folder, "Ctrl+Shift+I",
                                       "Add every CSV/Parquet file of a folder, in name order, each its own batch"),
            "add_labels": self._action("Add &labels…", self.add_labels, None,
                                       "Labels that arrived later: a file of id,label rows joined to what was scored"),
            "import_model": self._action("&Import model…", self.import_model, None,
                                         "Register a scikit-learn model saved with skops as a new version"),
            "export_report": self._action("Export &report…", self.export_report, None,
                                          "One HTML file: the production model's card and its monitoring"),
            "export_mlflow": self._action("Export as MLflow &model…", self.export_mlflow, None,
                                          "The production model as an MLflow model directory (skops, signature, "
                                          "pinned requirements)"),
            "push_mlflow": self._action("&Push to MLflow…", self.push_mlflow, None,
                                        "Log every version as an MLflow run and register it on a tracking server"),
            "delete_project": self._action("&Delete project…", self.delete_project, None, "Delete the project and its files"),
            "quit": self._action("&Quit", self.close, QKeySequence.StandardKey.Quit),
            "retrain": self._action("&Retrain", self.controller.retrain, "Ctrl+R",
                                    "Train a new version on the project's training data (a child process; Cancel stops it)"),
            "deploy": self._action("&Deploy…", self.deploy, "Ctrl+D", "Make a version the production model"),
            "rollback": self._action("Roll &back", self.rollback, "Ctrl+Shift+B",
                                     "Go back to the previous production model"),
            "monitor": self._action("Run &monitoring now", self.controller.monitor_now, "Ctrl+M",
                                    "Sweep the inbox, then score new batches with the production model"),
            "approve": self._action("&Approve challenger", self.controller.approve, None,
                                    "Deploy the retrained challenger waiting for approval"),
            "serve": self._action("Start scoring server", self.toggle_server, None,
                                  "A loopback REST server that speaks MLflow's scoring protocol"),
            "demo_batch": self._action("Play demo stream", self.controller.set_demo_stream, None,
                                       "Drop a simulated batch into the demo project's inbox every few seconds"),
            "settings": self._action("Project &settings…", self.edit_settings, "Ctrl+,",
                                     "Preset, metric, threshold, policy, training window… (as `project set`)"),
            "reset_demo": self._action("Reset demo…", self.reset_demo, None,
                                       "Delete the demo project and build it afresh; the stream starts over"),
            "cancel": self._action("&Cancel job", self.cancel_current_job, "Esc"),
            "refresh": self._action("&Refresh", self.refresh_all, QKeySequence.StandardKey.Refresh),
            "about": self._action("&About Keel", self.about),
            "user_guide": self._action("&User guide", self.user_guide, QKeySequence.StandardKey.HelpContents,
                                       "The README's sections, in the app"),
            "shortcuts": self._action("&Keyboard shortcuts", self.keyboard_shortcuts, "Ctrl+/",
                                      "Every keyboard shortcut of the window"),
        }
        a["demo_batch"].setCheckable(True)
        return a

    def _make_menus(self) -> None:
        a = self.named_actions
        file_menu = self.menuBar().addMenu("&File")
        for key in ("new_project", "open_workspace", None, "add_data", "add_folder", "add_labels", "import_model",
                    "export_report", "export_mlflow", "push_mlflow", None, "delete_project", None, "quit"):
            file_menu.addSeparator() if key is None else file_menu.addAction(a[key])
        model_menu = self.menuBar().addMenu("&Model")
        for key in ("retrain", "deploy", "rollback", "approve", None, "settings", None, "monitor", "demo_batch",
                    "reset_demo", None, "serve", "cancel"):
            model_menu.addSeparator() if key is None else model_menu.addAction(a[key])
        view_menu = self.menuBar().addMenu("&View")
        view_menu.addAction(a["refresh"])
        self.tab_actions = []
        for index, name in enumerate(("Overview", "Data", "Models", "Monitoring", "Deployments", "Alerts", "Activity")):
            action = QAction(name, self)
            action.setShortcut(QKeySequence(f"Ctrl+{index + 1}"))
            action.triggered.connect(lambda _=False, i=index: self.tabs.setCurrentIndex(i))
            view_menu.addAction(action)
            self.tab_actions.append(action)
        help_menu = self.menuBar().addMenu("&Help")
        help_menu.addAction(a["user_guide"])
        help_menu.addAction(a["shortcuts"])
        whats_this = QWhatsThis.createAction(self)
        whats_this.setToolTip("Click, then click a setting to read what it does")
        help_menu.addAction(whats_this)
        help_menu.addSeparator()
        help_menu.addAction(a["about"])
        for action in a.values():
            self.addAction(action)

    def _make_body(self) -> None:
        self.splitter = QSplitter(Qt.Orientation.Horizontal)
        self.splitter.setObjectName("mainSplitter")
        left = QWidget()
        left_layout = QVBoxLayout(left)
        left_layout.setContentsMargins(6, 6, 0, 6)
        left_layout.addWidget(common.heading("Projects", 1.1))
        self.project_list = QListWidget()
        self.project_list.setObjectName("projectList")
        self.project_list.setIconSize(QSize(14, 14))
        self.project_list.setSpacing(2)
        self.project_list.setWordWrap(True)
        self.project_list.currentItemChanged.connect(self._project_clicked)
        left_layout.addWidget(self.project_list, 1)
        new_button = QPushButton("New project…")
        new_button.clicked.connect(self.named_actions["new_project"].trigger)
        left_layout.addWidget(new_button)
        self.splitter.addWidget(left)

        right = QWidget()
        right_layout = QVBoxLayout(right)
        right_layout.setContentsMargins(0, 6, 6, 0)
        self.tabs = QTabWidget()
        self.tabs.setObjectName("panels")
        self.tabs.setDocumentMode(True)
        self.panels: dict[str, Panel[Any]] = {}  # by lower-case title; each tab shows data of its own type
        for cls in (OverviewPanel, DataPanel, ModelsPanel, MonitoringPanel, DeploymentsPanel, AlertsPanel, ActivityPanel):
            panel = cls(self.controller, self.named_actions)
            self.panels[cls.title.lower()] = panel
            self.tabs.addTab(panel, cls.title)
            if isinstance(panel, MonitoringPanel):
                self.monitoring_panel = panel
            if isinstance(panel, OverviewPanel):
                self.overview_panel = panel
        right_layout.addWidget(self.tabs, 1)
        self.tabs.currentChanged.connect(self._tab_changed)
        monitoring = self.monitoring_panel
        monitoring.prefer_x_axis(setting_text(self.settings, "monitoring/x_axis", "batch"))
        monitoring.x_axis_changed.connect(lambda kind: self.settings.setValue("monitoring/x_axis", kind))
        self.job_bar = JobBar()
        self.job_bar.cancel_requested.connect(self.controller.runner.cancel)
        self.job_bar.cancel_requested.connect(lambda job: self._show_job(job))
        right_layout.addWidget(self.job_bar)
        retained = self.job_bar.sizePolicy()
        retained.setRetainSizeWhenHidden(True)  # its place is kept while no job runs: the tabs never move
        self.job_bar.setSizePolicy(retained)
        self.banner = Banner(self.tabs)  # floats over the top of the page: showing it moves nothing
        self.splitter.addWidget(right)
        self.splitter.setStretchFactor(1, 1)
        self.splitter.setSizes([320, 960])
        self.setCentralWidget(self.splitter)
        self._restore_splitters()

        self.workspace_label = QLabel()
        self.statusBar().addPermanentWidget(self.workspace_label)
        self.statusBar().showMessage("Opening the workspace…")

    def _make_tray(self) -> QSystemTrayIcon | None:
        if not QSystemTrayIcon.isSystemTrayAvailable():
            return None
        tray = QSystemTrayIcon(app_icon(), self)
        tray.setToolTip("Keel")
        tray.activated.connect(self._show_from_tray)
        tray.show()
        return tray

    def _show_from_tray(self, *_reason: object) -> None:
        self.showNormal()
        self.raise_()
        self.activateWindow()

    def _splitters(self) -> dict[str, QSplitter]:
        found = {"main": self.splitter}
        for splitter in self.findChildren(QSplitter):
            if splitter.objectName() and splitter is not self.splitter:
                found[splitter.objectName()] = splitter
        return found

    def _restore_splitters(self) -> None:
        for name, splitter in self._splitters().items():
            state = self.settings.value(f"splitters/{name}")
            if state is not None:
                splitter.restoreState(state)

    def save_state(self) -> None:
        self.settings.setValue("geometry", self.saveGeometry())
        for name, splitter in self._splitters().items():
            self.settings.setValue(f"splitters/{name}", splitter.saveState())
        if self.controller.project:
            self.settings.setValue("last_project", self.controller.project)
        self.settings.setValue("last_tab", self.tabs.currentIndex())
        self.settings.sync()

    # ------------------------------------------------------------------ workspace
    def _update_title(self) -> None:
        where = self.controller.workspace_dir or ""
        suffix = " [read-only]" if self.controller.read_only else ""
        self.setWindowTitle(f"Keel — {where}{suffix}" if where else "Keel")

    def _on_keel_ready(self) -> None:
        self._update_title()
        keel = self.controller.opened_keel
        self.workspace_label.setText(f"{keel.root}{'  · read-only' if self.controller.read_only else ''}")
        self.statusBar().showMessage("Workspace open", 3000)
        self.tabs.setCurrentIndex(setting_int(self.settings, "last_tab"))
        self._offer_demo = True  # the first read of the project list says whether the workspace is empty
        self.refresh_projects()

    def workspace_shown(self) -> bool:
        """The project list is filled and the Overview shows the selected project with its production
        state read: what bench/startup.py and bench/growth.py time the window to."""
        controller = self.controller
        return (controller.keel is not None and self.project_list.count() > 0 and bool(controller.project)
                and self.panels["overview"].shows(controller.project)
                and controller.overview is not None and controller.overview.project == controller.project)

    def choose_workspace(self) -> None:
        folder = file_dialogs.existing_folder(self, "Open workspace", self.controller.workspace_dir or str(Path.home()))
        if folder:
            self.open_workspace_requested.emit(folder)

    # ------------------------------------------------------------------ projects
    def refresh_projects(self) -> None:
        """The project list with each project's health, and the alerts opened since the last look:
        read on a worker, shown when it lands; asked again during a read, it reads once more after."""
        keel = self.controller.keel
        if keel is None:
            return
        if self._reading_projects:
            self._read_projects_again = True
            return
        self._reading_projects, self._read_projects_again = True, False
        looked = self._looked_stamps()
        last_alert_id = self._last_alert_id
        self.controller.run(READS_QUEUE, "read", "Reading the projects",
                            lambda job: read_project_list(keel, looked, last_alert_id),
                            on_done=lambda data: self._projects_read(keel, data),
                            on_error=lambda message, details: self._projects_read(keel, None, message))

    def _projects_read(self, keel: "Keel", data: ProjectListReading | None, error: str = "") -> None:
        self._reading_projects = False
        if keel is self.controller.keel and not self._closing:
            if data is None:
                log.warning("reading the project list failed: %s", error)
            else:
                self._show_projects(data)
        if self._read_projects_again:
            self.refresh_projects()

    def _show_projects(self, data: ProjectListReading) -> None:
        for name in data.first_seen:  # a project seen for the first time: its past is not news
            if not self.settings.value(f"looked/{name}", "", type=str):
                self.settings.setValue(f"looked/{name}", data.seen_at)
        names = data.names
        current = self.controller.project or self._restoring_project
        self.project_list.blockSignals(True)
        self.project_list.clear()
        for health in data.health:
            name = health.project
            item = QListWidgetItem(dot_icon(HEALTH_COLORS[health.state]), self._project_line(health))
            item.setData(Qt.ItemDataRole.UserRole, name)
            item.setToolTip("; ".join(health.reasons) or "healthy")
            self.project_list.addItem(item)
            if name == current:
                self.project_list.setCurrentItem(item)
        self.project_list.blockSignals(False)
        if current not in names:
            current = names[0] if names else ""
            if names:
                self.project_list.setCurrentRow(0)
        self._restoring_project = ""
        self.controller.set_project(current)
        self._announce_alerts(data.last_alert_id, data.new_alerts)
        self.update_actions()
        if self._offer_demo:
            self._offer_demo = False
            if not names and self.controller.can_write():
                self.notify("info", "An empty workspace: building a demo project so you can look around. "
                                    "Create your own with File > New project…")
                self.controller.create_demo()

    @staticmethod
    def _project_line(health: ProjectHealth) -> str:
        if health.production_version is None:
            detail = "no production model"
        else:
            now = health.current_value
            detail = f"v{health.production_version} · {health.metric} "
            detail += (f"{fmt_value(now, 3)}{'~' if health.current_is_estimate else ''} "
                       f"(trained {fmt_value(health.training_value, 3)})" if now is not None
                       else f"{fmt_value(health.training_value, 3)} at training")
        if health.open_alerts:
            detail += f" · {health.open_alerts} alert{'s' if health.open_alerts > 1 else ''}"
        since = health.since
        if since.opened or since.recovered:
            detail += f"\nsince you looked: {since.opened} opened, {since.recovered} recovered"
        return f"{health.project}\n{detail}"

    def _looked_stamps(self) -> dict[str, str]:
        """When the user last looked at each project's alerts (its Alerts tab, or leaving the project)."""
        self.settings.beginGroup("looked")
        try:
            return {name: setting_text(self.settings, name) for name in self.settings.childKeys()}
        finally:
            self.settings.endGroup()

    def looked_at(self, name: str) -> str:
        """When the user last looked at the project's alerts; now, for a project seen the first time."""
        stamp = setting_text(self.settings, f"looked/{name}")
        if not stamp:
            stamp = self._now()
            self.settings.setValue(f"looked/{name}", stamp)
        return stamp

    def mark_looked(self, name: str) -> None:
        if name:
            self.settings.setValue(f"looked/{name}", self._now())

    def _now(self) -> str:
        """Now by the open workspace's clock (the system's before one is open)."""
        from app.core.domain.clock import SYSTEM_CLOCK

        keel = self.controller.keel
        return (keel.clock if keel is not None else SYSTEM_CLOCK)()

    def _tab_changed(self, index: int) -> None:
        if self.tabs.widget(index) is self.panels["alerts"] and self.controller.project:
            self.mark_looked(self.controller.project)
            self.refresh_projects()

    def _project_clicked(self, item: QListWidgetItem | None, _previous: QListWidgetItem | None = None) -> None:
        if item is not None:
            self.controller.set_project(item.data(Qt.ItemDataRole.UserRole))

    def _on_project_changed(self, name: str) -> None:
        if self._shown_project and self._shown_project != name:
            self.mark_looked(self._shown_project)  # the user has seen it, and is leaving it
        self._shown_project = name
        if self.tabs.currentWidget() is self.panels["alerts"]:
            self.mark_looked(name)
        self.update_actions()
        self._show_current_job()
        for row in range(self.project_list.count()):
            item = self.project_list.item(row)
            if item.data(Qt.ItemDataRole.UserRole) == name and self.project_list.currentItem() is not item:
                self.project_list.blockSignals(True)
                self.project_list.setCurrentItem(item)
                self.project_list.blockSignals(False)

    def _announce_alerts(self, last_alert_id: int, opened: tuple[AlertNotice, ...]) -> None:
        """The alerts opened since the last read, once each; those already open at start are shown by
        the list, not announced."""
        if self._last_alert_id is None:
            self._last_alert_id = last_alert_id
            return
        for alert in opened:
            if alert.id > self._last_alert_id:
                self._last_alert_id = alert.id
                self.notify("warning", f"New alert on {alert.project}: {alert.message}")

    # ------------------------------------------------------------------ actions
    def update_actions(self) -> None:
        c = self.controller
        has_keel = c.keel is not None
        project = bool(c.project)
        # Work queues behind the project's running job (one serial queue per project), so an action
        # is disabled only while the same kind of change is under way, not during every monitoring cycle.
        can = c.can_write() and project
        writable = can and not c.busy(("delete", "demo"))
        a = self.named_actions
        a["new_project"].setEnabled(c.can_write())
        a["add_data"].setEnabled(writable)
        a["add_labels"].setEnabled(writable)
        a["add_folder"].setEnabled(writable)
        a["import_model"].setEnabled(writable)
        for key in ("export_report", "export_mlflow", "push_mlflow"):
            a[key].setEnabled(has_keel and project)
        a["delete_project"].setEnabled(can and not c.busy())
        a["retrain"].setEnabled(writable and not c.busy(("train",)))
        a["settings"].setEnabled(writable and not c.busy(("settings",)))
        overview = c.overview  # read on a worker whenever the project or the registry changes
        production = overview.production_version if overview else None
        deployments = overview.deployments if overview else 0
        challenger = overview.challenger_waiting if overview else False
        first_model = overview is not None and production is None and deployments == 0
        a["retrain"].setText("&Train" if first_model else "&Retrain")
        a["retrain"].setToolTip(("Train the project's first model" if first_model else "Train a new version") +
                                " on its training data (a child process; Cancel stops it)")
        deploying = c.busy(DEPLOY_KINDS)
        a["deploy"].setEnabled(writable and not deploying)
        a["rollback"].setEnabled(writable and not deploying and deployments > 1)
        a["rollback"].setToolTip("Go back to the previous production model" if deployments > 1 else
                                 "Nothing to roll back to: only one model has been in production")
        a["monitor"].setEnabled(writable and production is not None and not c.busy(("monitor",)))
        a["monitor"].setToolTip("Sweep the inbox, then score new batches with the production model")
        a["approve"].setEnabled(writable and not deploying and challenger)
        a["approve"].setToolTip("Deploy the retrained challenger waiting for approval" if challenger
                                else "No challenger is waiting for approval")
        a["serve"].setEnabled(project and production is not None and has_keel)
        a["serve"].setText("Stop scoring server" if c.server is not None else "Start scoring server")
        a["serve"].setToolTip("A loopback REST server that speaks MLflow's scoring protocol")
        stream_ready = has_keel
        is_demo = c.project == DEMO_PROJECT
        a["demo_batch"].setEnabled(c.can_write() and is_demo and stream_ready)
        a["demo_batch"].setVisible(is_demo)
        a["demo_batch"].setChecked(c.demo_stream_playing())
        a["reset_demo"].setEnabled(writable and is_demo and stream_ready)
        a["reset_demo"].setVisible(is_demo)
        a["cancel"].setEnabled(bool(c.runner.active_jobs()))

    def _current_job(self) -> "Job | None":
        jobs = [j for j in self.controller.runner.active_jobs() if j.kind not in ("read", "open")]
        for job in jobs:
            if job.state == "running" and job.project in (self.controller.project, None):
                return job
        return next((j for j in jobs if j.state == "running"), jobs[0] if jobs else None)

    def _show_job(self, job: "Job") -> None:
        self.job_bar.show_job(self._current_job())

    def _show_current_job(self) -> None:
        self.job_bar.show_job(self._current_job())
        self.update_actions()

    def cancel_current_job(self) -> None:
        job = self._current_job()
        if job is not None and job.cancellable:
            self.controller.runner.cancel(job)
            self.job_bar.show_job(job)

    def new_project(self) -> None:
        from app.frontends.gui.wizard import NewProjectWizard

        self.wizard = NewProjectWizard(self.controller, self)
        self.wizard.open()

    def _data_folder(self) -> str:
        folder = setting_text(self.settings, "last_data_folder")
        return folder if folder and Path(folder).is_dir() else str(Path.home())

    def add_data(self) -> None:
        paths = file_dialogs.open_files(self, f"Add data to {self.controller.project} (Ctrl+click: several files)",
                                        self._data_folder(),
                                        file_dialog_filter())
        if paths:
            self.settings.setValue("last_data_folder", str(Path(paths[0]).parent))
            from app.core.services.batches import name_order

            self.controller.ingest_files(sorted(paths, key=lambda p: name_order(Path(p))))

    def add_data_folder(self) -> None:
        from app.core.domain.errors import KeelError
        from app.core.services.batches import data_files

        folder = file_dialogs.existing_folder(self, f"Add a folder of batches to {self.controller.project}",
                                              self._data_folder())
        if not folder:
            return
        self.settings.setValue("last_data_folder", folder)
        try:
            files = data_files(folder)
        except KeelError as exc:
            self.show_error(str(exc))
            return
        if not files:
            self.notify("warning", f"{folder} holds no CSV, TSV or Parquet file: nothing added.")
            return
        self.controller.ingest_files([str(p) for p in files])

    def add_labels(self) -> None:
        path = file_dialogs.open_file(self, f"Add labels to {self.controller.project} (a file of id,label rows)",
                                      self._data_folder(),
                                      "Data files (*.csv *.tsv *.txt *.gz *.parquet *.pq);;All files (*)")
        if path:
            self.controller.add_labels(path)

    def import_model(self) -> None:
        path = file_dialogs.open_file(self, "Import a model", str(Path.home()), "skops model (*.skops)")
        if path:
            self.controller.check_model_file(path, on_done=lambda outside: self._import_after_review(path, outside))

    def export_report(self) -> None:
        name = self.controller.project
        path = file_dialogs.save_file(self, f"Export a report of {name}", str(Path.home() / f"{name}-report.html"),
                                      "HTML report (*.html)")
        if path:
            self.controller.export_report(path)

    def export_mlflow(self) -> None:
        name = self.controller.project
        self.controller.read_for_click(f"Reading the production version of {name}",
                                       lambda keel: keel.production_version(name),
                                       lambda version: self._export_mlflow_version(name, version))

    def _export_mlflow_version(self, name: str, version: int | None) -> None:
        if version is None:
            self.notify("info", f"{name} has no production model yet: deploy a version first.")
            return
        path = file_dialogs.save_file(self, f"Export v{version} of {name} as an MLflow model (a new folder)",
                                      str(Path.home() / f"{name}-v{version}-mlflow"), "")
        if path:
            self.controller.export_mlflow(version, path)

    def push_mlflow(self) -> None:
        name = self.controller.project
        uri, ok = QInputDialog.getText(self, "Push to MLflow",
                                       f"MLflow tracking server for every version of {name} (http://host:port):")
        if ok and uri.strip():
            self.controller.push_mlflow(uri.strip())

    def _import_after_review(self, path: str, outside: list[str]) -> None:
        """The user sees every type outside Keel's trusted list and accepts them, or nothing is imported."""
        if outside and not common.confirm(
                self, "Trust these types?", f"{Path(path).name} holds types outside Keel's trusted list:",
                "\n".join(outside) + "\n\nLoading a type runs its code: accept only if you trust where this file "
                "comes from. The accepted types are recorded for this version only.", ok="Trust and import"):
            return
        self.controller.import_model(path, outside)

    def deploy(self) -> None:
        name = self.controller.project
        self.controller.read_for_click(f"Reading the versions of {name}", lambda keel: keel.status(name),
                                       lambda status: self._choose_version_to_deploy(name, status))

    def _choose_version_to_deploy(self, name: str, status: ProjectStatus) -> None:
        metric = status.metric
        choices = [v for v in reversed(status.versions) if not v.in_production and not v.archived]
        if not choices:
            self.notify("info", "Every version is either in production or archived: retrain to get a new one.")
            return
        labels = [f"v{v.version} — {metric} {fmt_value(v.metrics.get(metric))} — "
                  f"{common.local_time(v.created_at)}" for v in choices]
        now = f"v{status.production_version}" if status.production_version else "none"
        label, ok = QInputDialog.getItem(self, "Deploy", f"Version to put in production for {name} (now: {now}):",
                                         labels, 0, False)
        if ok:
            self.controller.deploy(choices[labels.index(label)].version)

    def rollback(self) -> None:
        name, overview = self.controller.project, self.controller.overview
        if overview is None or overview.production_version is None:
            return
        current, previous = overview.production_version, overview.rollback_version
        if previous is None:
            self.notify("info", f"v{current} is the first production model of {name}: nothing to roll back to.")
            return
        if common.confirm(self, "Roll back", f"Roll {name} back from v{current} to v{previous}?",
                          f"v{previous} becomes the production model again; v{current} stays in "
                          "the registry. The scoring server answers with the restored model from its next request.",
                          ok="Roll back"):
            self.controller.rollback()

    def delete_project(self) -> None:
        name = self.controller.project
        self.controller.read_for_click(f"Reading what {name} holds", lambda keel: keel.status(name),
                                       lambda status: self._confirm_delete(name, status))

    def _confirm_delete(self, name: str, status: ProjectStatus) -> None:
        production = status.production_version
        warning = (f"v{production} is its production model: deleting the project takes it out of production and the "
                   "scoring server stops answering for it. " if production else "")
        if common.confirm(self, "Delete project", f"Delete project {name}?",
                          warning + f"{len(status.versions)} model version(s), {len(status.dataset_versions)} "
                          "dataset version(s) and their files are deleted. The audit log keeps a record. "
                          "This cannot be undone.", ok="Delete"):
            self.controller.delete_project(name)

    def edit_settings(self) -> None:
        name = self.controller.project
        self.controller.read_for_click(f"Reading the settings of {name}", lambda keel: keel.project(name),
                                       lambda project: self._open_settings(name, project))

    def _open_settings(self, name: str, project: Project) -> None:
        """The dialog, window-modal; Save asks the core to check the changes on a worker first."""
        from app.frontends.gui.settings_dialog import SettingsDialog

        dialog = SettingsDialog(project, self, check=lambda changes, answer: self.controller.check_settings(
            name, changes, answer))
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.saved.connect(lambda changes: self.controller.save_settings(changes) if changes else None)
        dialog.open()

    def reset_demo(self) -> None:
        if common.confirm(self, "Reset demo", "Reset the demo project?",
                          "The demo project, its models, data and history are deleted and built afresh; "
                          "the demo stream starts over. Your other projects are not touched.", ok="Reset"):
            self.controller.reset_demo()

    def toggle_server(self) -> None:
        if self.controller.server is not None:
            self.controller.stop_server()
            self.overview_panel.show_server()
            self.notify("info", "Scoring server stopped.")
            self.update_actions()
        else:
            self.controller.start_server()

    def refresh_all(self) -> None:
        self.controller.registry_changed.emit()

    def user_guide(self) -> None:
        from app.frontends.gui.help import UserGuideDialog

        UserGuideDialog(self).exec()

    def keyboard_shortcuts(self) -> None:
        from app.frontends.gui.help import ShortcutsDialog

        ShortcutsDialog(self).exec()

    def about(self) -> None:
        import platform
        from importlib import metadata

        import PySide6
        from PySide6.QtCore import qVersion

        def version(package: str) -> str:
            try:
                return metadata.version(package)
            except metadata.PackageNotFoundError:
                return "not installed"

        QMessageBox.about(self, "About Keel", (
            f"<h3>Keel {__version__}</h3>"
            "<p>Offline MLOps for scikit-learn models: data, training, registry, deployment, monitoring.</p>"
            f"<p>Python {platform.python_version()} · Qt {qVersion()} · PySide6 {PySide6.__version__}<br>"
            f"scikit-learn {version('scikit-learn')} · pandas {version('pandas')} · numpy {version('numpy')}<br>"
            f"pyqtgraph {version('pyqtgraph')} · skops {version('skops')} · APScheduler {version('APScheduler')}</p>"
            f"<p>Workspace: {self.controller.workspace_dir}</p>"))

    # ------------------------------------------------------------------ notifications and errors
    def notify(self, level: str, message: str, seconds: float = 10.0) -> None:
        self.banner.show_message(level, message, seconds)
        self.statusBar().showMessage(message, 8000)
        if self.tray is not None and level in ("warning", "error"):
            icon = QSystemTrayIcon.MessageIcon.Warning
            self.tray.showMessage("Keel", message, icon, 8000)

    def show_error(self, message: str, details: str = "") -> None:
        log.error("%s\n%s", message, details)
        self.banner.show_message("error", message)
        common.show_error(self, message, details)

    # ------------------------------------------------------------------ drag and drop
    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        urls = event.mimeData().urls()
        if urls and all(u.isLocalFile() and (u.toLocalFile().lower().endswith(DATA_FILE_SUFFIXES)
                                             or Path(u.toLocalFile()).is_dir()) for u in urls):
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:
        """Dropped files and folders (their data files, in name order): each file its own batch."""
        from app.core.services.batches import data_files

        if not self.controller.project:
            self.notify("warning", "Select a project first: a dropped file is added to the selected project.")
            return
        paths = []
        for url in event.mimeData().urls():
            path = Path(url.toLocalFile())
            paths += [str(p) for p in data_files(path)] if path.is_dir() else [str(path)]
        if paths:
            self.controller.ingest_files(paths)
        event.acceptProposedAction()

    # ------------------------------------------------------------------ closing
    def _unfinished_jobs(self) -> "list[Job]":
        return [j for j in self.controller.runner.active_jobs() if j.kind in WRITE_KINDS]

    def closeEvent(self, event: QCloseEvent) -> None:
        running = self._unfinished_jobs()
        if running:
            if not self._closing:
                if not common.confirm(self, "Quit", f"{running[0].title} is still running.",
                                      "Quit anyway? Training is cancelled (nothing half-done is saved); other work "
                                      "is finished first, then Keel closes.", ok="Quit"):
                    event.ignore()
                    return
                self._closing = True
                self.controller.stop_scheduler()
                for job in running:
                    if job.cancellable:
                        self.controller.runner.cancel(job)
                self.controller.runner.busy_changed.connect(self._close_when_idle)
                self.tabs.setEnabled(False)
                self.notify("info", f"Keel closes as soon as “{running[0].title}” ends; nothing is left half-done.",
                            seconds=600)
            event.ignore()
            return
        self.save_state()
        self.shutdown()
        super().closeEvent(event)

    def _close_when_idle(self) -> None:
        # busy_changed also comes from inside a finished job's callbacks (one that starts the next read):
        # closing there would shut the job runner down under the rest of those callbacks
        if self._closing and not self._unfinished_jobs():
            QTimer.singleShot(0, self._close_if_still_idle)

    def _close_if_still_idle(self) -> None:
        if self._closing and self.isVisible() and not self._unfinished_jobs():
            self.close()

    def shutdown(self) -> None:
        self.banner.stop()
        self.job_bar.stop()
        self.statusBar().clearMessage()  # stops the status bar's message timer
        self.monitoring_panel.stop()
        if self.tray is not None:
            self.tray.hide()
        self.controller.shutdown()
