"""The Clusters panel: a clustering run's clusters as cards in the App.

Every render reads the run afresh (``panel.overview``), so the panel holds
no copy of it; the cluster shown is the one the App's view selects, so the
selection follows the view (the view bar, a reload) with nothing to keep in
step. Each action is the plugin's operator, opened with its form
(``ctx.prompt``); the panel renders again when it succeeds.
"""

import hashlib
import json

import fiftyone.operators as foo
import fiftyone.operators.types as types

from . import PLUGIN, internals, panel, runs, units
from .display import add_sizes_plot, add_sweep_plot
from .groups import PREFIX
from .typical import group_view, select, selected

THUMB_PX = 52
CARD_WIDTH = "244px"
# how often the panel looks for runs of the dataset: often while one is
# queued or executing, to show its progress; rarely otherwise, to notice
# runs started elsewhere
POLL_ACTIVE_MS = 1500
POLL_IDLE_MS = 15000
# events whose only effect is a new view for the App
_VIEW_EVENTS = ("on_select", "on_bar", "on_clear")


def _operator(name):
    """The URI of the plugin's operator ``name``."""
    return f"{PLUGIN}/{name}"


class ClustersPanel(foo.Panel):
    @property
    def config(self):
        return foo.PanelConfig(
            name="clusters_panel",
            label="Clusters",
            icon="bubble_chart",
            category=foo.Categories.CURATE,
            help_markdown="The clusters of a clustering run as cards: click one to "
            "show its samples in the grid, most typical first.",
        )

    def execute(self, ctx):
        """Renders only when the panel would change: an event that changes
        the App's view leaves the rendering to ``on_change_view`` (which
        sees the new view), and a poll that finds the run and the live state
        as last rendered does nothing (a render redraws every card)."""
        method = ctx.params.get("__method__")
        if method in _VIEW_EVENTS:
            return getattr(self, method)(ctx)
        if method == "on_poll" and ctx.panel.get_state("digest") == _digest(*_content(ctx)):
            return None
        return super().execute(ctx)

    def render(self, ctx):
        root = types.Object()
        key, shown, activity = _content(ctx)
        digest = _digest(key, shown, activity)
        if ctx.panel.get_state("digest") != digest:
            ctx.panel.set_state("digest", digest)
        if key is None:
            root.md("No clustering runs on this dataset yet: press ` and run "
                    "`compute_clusters`.", name="empty")
            _add_activity(root, activity, self.on_poll)
            return types.Property(root, view=types.GridView(orientation="vertical"))
        chosen, _ = _selection(_view_stages(ctx), shown["cluster_field"],
                               shown["group_field"])
        cards = {c["id"]: c for c in shown["clusters"] + shown["groups"] + [shown["noise"]]
                 if c}
        chosen = chosen if chosen in cards else None

        self._add_menu(root, ctx.dataset, key)
        _add_activity(root, activity, self.on_poll)
        if chosen is not None:
            self._add_selection(root, cards[chosen])
        grid = root.grid("cards", gap=1.5)
        for card in shown["clusters"]:
            self._add_card(grid, card, card["id"] == chosen)
        if shown["groups"]:
            root.md("**Groups**: clusters that look alike, joined", name="groups_title")
            groups = root.grid("groups", gap=1.5)
            for card in shown["groups"]:
                self._add_card(groups, card, card["id"] == chosen)
        if shown["noise"]:
            root.md("**Noise**: samples in no cluster", name="noise_title")
            self._add_card(root.grid("noise", gap=1.5), shown["noise"],
                           chosen == shown["noise"]["id"])
        add_sizes_plot(root, "sizes", [c["size"] for c in shown["clusters"]],
                       selected=chosen, on_click=self.on_bar)
        if shown["sweep"]:
            add_sweep_plot(root, "sweep", shown["sweep"], shown["chosen_k"])
        root.md(shown["facts"], name="facts")
        return types.Property(root, view=types.GridView(orientation="vertical", gap=2))

    def _add_menu(self, root, dataset, key):
        """The run's dropdown and the actions on the run."""
        menu = root.menu("menu", variant="square", color="51")
        choices = types.DropdownView()
        for run_key in panel.runs_newest_first(dataset):
            choices.add_choice(run_key, label=run_key)
        menu.str("run_key", view=choices, label="Clustering run", default=key,
                 on_change=self.on_change_run)
        menu.btn("name_clusters", label="Name clusters", icon="auto_awesome",
                 on_click=self.on_name_clusters)
        menu.btn("compare", label="Compare", icon="compare_arrows", on_click=self.on_compare)
        menu.btn("delete", label="Delete run", icon="delete", on_click=self.on_delete)

    def _add_selection(self, root, card):
        """Which cluster the grid shows, and the actions on it."""
        bar = root.h_stack("selection", align_y="center", gap=1)
        bar.md(f"Showing **{_title(card)}** ({card['size']:,} samples), most "
               "typical first", name="shown")
        params = dict(cluster=card["id"])
        bar.btn("clear", label="Clear", icon="close", on_click=self.on_clear)
        if card["id"].startswith(PREFIX):  # the actions below act on clusters
            return
        bar.btn("rename", label="Rename", icon="edit", on_click=self.on_rename,
                params=params)
        bar.btn("tag", label="Tag samples", icon="local_offer", on_click=self.on_tag,
                params=params)

    def _add_card(self, grid, card, chosen):
        """A cluster's card: its title (a button that shows it), size, name
        and description, and its most typical samples' thumbnails."""
        box = grid.v_stack(f"card_{_safe(card['id'])}", variant="outline", width=CARD_WIDTH,
                           pad=1, gap=0.5)
        params = dict(cluster=card["id"])
        box.btn("open", label=_title(card), on_click=self.on_select, params=params,
                variant="contained" if chosen else "outlined")
        text = f"**{card['size']:,}** samples ({card['share']:.1%})"
        if card["naming"] == "manual":
            text += ", named by hand"
        if card["description"]:
            text += f"\n\n{card['description']}"
        if card.get("clusters"):
            text += f"\n\nClusters {', '.join(card['clusters'])}"
        box.md(text, name="about")
        thumbs = box.h_stack("thumbs", gap=0.5)
        for i, url in enumerate(card["thumbnails"]):
            thumbs.str(f"t{i}", default=url, view=types.ImageView(
                width=f"{THUMB_PX}px", height=f"{THUMB_PX}px", alt=f"cluster {card['id']}",
                operator=self.on_select, params=params,
                componentsProps=dict(image=dict(loading="lazy", decoding="async",
                                                style=dict(objectFit="cover")))))

    def on_load(self, ctx):
        """Opens on the newest run."""
        ctx.panel.set_state("menu.run_key", _run_key(ctx))

    def on_change_view(self, ctx):
        """The shown cluster is the one the App's view selects: rendering
        again reads it."""

    def on_change_dataset(self, ctx):
        """Another dataset: its newest run."""
        ctx.panel.set_state("menu.run_key", _run_key(ctx, fresh=True))

    def on_change_run(self, ctx):
        """The run chosen in the dropdown (kept in the panel's state)."""

    def on_poll(self, ctx):
        """Renders again: the live state, and the run as it is now."""

    def on_select(self, ctx):
        """Shows the cluster clicked in the grid, most typical first; a
        second click restores the view it narrowed."""
        self._show(ctx, ctx.params.get("cluster"))

    def on_bar(self, ctx):
        """A click on the sizes chart's bar of a cluster selects it."""
        if ctx.params.get("x") is not None:
            self._show(ctx, str(ctx.params["x"]))

    def on_clear(self, ctx):
        """Restores the view the selection narrowed."""
        self._show(ctx, None)

    def _show(self, ctx, cluster):
        """Sets the App's view to the one the selection narrowed, narrowed
        to ``cluster`` unless it was shown already (or is None)."""
        info, results = runs.get(ctx.dataset, _run_key(ctx))
        on = units.for_run(ctx.dataset, info.config)
        config = on.read(info.config)
        chosen, base = _selection(_view_stages(ctx), config.cluster_field,
                                  getattr(config, "group_field", None))
        if on.patches_field and base and base[-1]["_cls"].endswith(".ToPatches"):
            base = base[:-1]  # the objects' view is made again from the samples'
        view = internals.build_view(ctx.dataset, base)
        if cluster is not None and chosen != cluster:
            view = units.for_run(view, info.config).rows()  # the objects, for a patch run
            clusters = {c["id"]: c for c in results.clusters}
            group = next((g for g in getattr(results, "groups", None) or []
                          if PREFIX + g["id"] == cluster), None)
            if group is not None:
                view = group_view(view, config, group, clusters)
            else:
                reps = clusters.get(cluster, {}).get("representatives", [])
                view = select(view, config, cluster, reps)
        ctx.ops.set_view(view=view)

    def on_name_clusters(self, ctx):
        """label_clusters_with_llm's form for the shown run."""
        ctx.prompt(_operator("label_clusters_with_llm"), params=dict(run_key=_run_key(ctx)),
                   on_success=self.on_done)

    def on_compare(self, ctx):
        """compare_clustering_runs' form, the shown run first."""
        ctx.prompt(_operator("compare_clustering_runs"), params=dict(run_a=_run_key(ctx)))

    def on_delete(self, ctx):
        """delete_clustering_run's form for the shown run."""
        ctx.prompt(_operator("delete_clustering_run"), params=dict(run_key=_run_key(ctx)),
                   on_success=self.on_deleted)

    def on_rename(self, ctx):
        """name_cluster's form for the shown cluster."""
        ctx.prompt(_operator("name_cluster"), params=dict(
            run_key=_run_key(ctx), cluster=ctx.params.get("cluster")),
            on_success=self.on_done)

    def on_tag(self, ctx):
        """tag_clusters' form, adding a tag to the shown cluster's samples."""
        ctx.prompt(_operator("tag_clusters"), params=dict(
            run_key=_run_key(ctx), clusters=[ctx.params.get("cluster")], action="add"),
            on_success=self.on_done)

    def on_done(self, ctx):
        """An action succeeded: rendering again shows the run as it is now."""

    def on_deleted(self, ctx):
        """The run is gone: a selection of its clusters is cleared, and the
        panel shows the newest run left."""
        result = ctx.params.get("result") or {}
        stages = _view_stages(ctx)
        for field in result.get("deleted_fields") or []:
            chosen, base = selected(stages, field)
            if chosen is not None:
                ctx.ops.set_view(view=internals.build_view(ctx.dataset, base))
        ctx.panel.set_state("menu.run_key", _run_key(ctx, fresh=True))


def _content(ctx):
    """``(run key, its overview, the live state)`` of what the panel shows."""
    key = _run_key(ctx)
    return key, key and panel.overview(ctx.dataset, key), panel.activity(ctx.dataset)


def _digest(*content):
    """A short fingerprint of what the panel shows."""
    text = json.dumps(content, sort_keys=True, default=str)
    return hashlib.sha1(text.encode()).hexdigest()[:16]


def _run_key(ctx, fresh=False):
    """The run shown: the one chosen in the dropdown if it still exists,
    else the newest (None without runs)."""
    keys = runs.list_runs(ctx.dataset)
    chosen = None if fresh else ctx.panel.get_state("menu.run_key")
    if chosen in keys:
        return chosen
    newest = panel.runs_newest_first(ctx.dataset)
    return newest[0] if newest else None


def _view_stages(ctx):
    """The App's view (its view bar, not the sidebar's filters) as stages."""
    return ctx.request_params.get("view") or []


def _selection(stages, cluster_field, group_field):
    """``(shown, stages before it)``: the cluster the App's view selects,
    or its group as "g<id>" (``shown`` None when neither)."""
    chosen, base = selected(stages, cluster_field)
    if chosen is None and group_field:
        group, base = selected(stages, group_field)
        chosen = None if group is None else PREFIX + group
    return chosen, base


def _title(card):
    """How a card is titled: "3 · Kitchens", or "Cluster 3" ("Group g0")
    until named."""
    name = card["name"] or ("noise" if card["id"] == panel.NOISE_ID else None)
    kind = "Group" if card["id"].startswith(PREFIX) else "Cluster"
    return f"{card['id']} · {name}" if name else f"{kind} {card['id']}"


def _safe(cluster):
    """A cluster id as part of a property name ("-1" has a minus)."""
    return cluster.replace("-", "m")


def _add_activity(root, activity, on_poll):
    """A progress bar per run of the dataset that is queued or executing,
    and the timer that renders the panel again to follow them."""
    for i, run in enumerate(activity):
        what = f"{run['operator']} on run '{run['run_key']}'" if run["run_key"] else (
            run["operator"])
        label = f"{what}: {run['state']}" + (f", {run['label']}" if run["label"] else "")
        root.float(f"activity_{i}", default=run["progress"], view=types.ProgressView(
            label=label))
    root.view("poll", types.TimerView(interval=POLL_ACTIVE_MS if activity else POLL_IDLE_MS,
                                      on_interval=on_poll))

