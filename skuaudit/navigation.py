"""Which pages each role sees. Pure data, so it is tested without Streamlit."""

from __future__ import annotations

from dataclasses import dataclass

ROLES: tuple[str, ...] = ("merchandiser", "category manager", "analyst")


@dataclass(frozen=True)
class PageSpec:
    path: str
    title: str
    icon: str
    roles: tuple[str, ...]


PAGES: tuple[PageSpec, ...] = (
    PageSpec(
        "pages/live_audit.py", "Live audit", ":material/videocam:", ("merchandiser", "analyst")
    ),
    PageSpec(
        "pages/photo_audit.py",
        "Photo audit",
        ":material/photo_camera:",
        ("merchandiser", "analyst"),
    ),
    PageSpec(
        "pages/offline_audit.py",
        "Offline audit",
        ":material/cloud_off:",
        ("merchandiser", "analyst"),
    ),
    PageSpec(
        "pages/share_of_shelf.py",
        "Share of shelf",
        ":material/pie_chart:",
        ("category manager", "analyst"),
    ),
    PageSpec(
        "pages/stockouts.py",
        "Stockouts",
        ":material/remove_shopping_cart:",
        ("category manager", "analyst"),
    ),
    PageSpec("pages/catalogue.py", "Catalogue", ":material/category:", ("analyst",)),
    PageSpec("pages/model_lab.py", "Model lab", ":material/science:", ("analyst",)),
)


LOGIN_ROLES: tuple[str, ...] = ("analyst",)


def requires_login(role: str) -> bool:
    """Whether ``role`` must sign in (with an account from ``skuaudit user add``) to see its pages."""
    return role in LOGIN_ROLES


def pages_for_role(role: str) -> list[PageSpec]:
    """The pages listed for ``role``, in menu order.

    Example:
        >>> [p.title for p in pages_for_role("merchandiser")]
        ['Live audit', 'Photo audit', 'Offline audit']
    """
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}; choose one of {list(ROLES)}")
    return [p for p in PAGES if role in p.roles]
