"""Which pages each role sees, and what opening a page needs. Pure data and logic, so it is
tested without Streamlit.

Every page has a fixed address (``/stockouts``), whichever role is chosen, so a reload or a
shared link opens the same page; the role itself travels in the URL query (``?role=analyst``).
``page_access`` says whether the chosen role may see the page now, and if not, what it needs.
"""

from __future__ import annotations

from dataclasses import dataclass

ROLES: tuple[str, ...] = ("merchandiser", "category manager", "analyst")


@dataclass(frozen=True)
class PageSpec:
    path: str
    title: str
    icon: str
    roles: tuple[str, ...]

    @property
    def url_path(self) -> str:
        """The page's address below the app's root, e.g. ``stockouts``."""
        return self.path.rsplit("/", 1)[-1].removesuffix(".py")


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


def page_by_path(path: str) -> PageSpec:
    """The page whose script is ``path`` (``"pages/stockouts.py"``)."""
    for spec in PAGES:
        if spec.path == path:
            return spec
    raise ValueError(f"no page {path!r}; pages are {[p.path for p in PAGES]}")


def _roles_in_words(roles: tuple[str, ...]) -> str:
    names = list(roles)
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"


@dataclass(frozen=True)
class Access:
    """Whether a page may be shown now, and if not, what it needs.

    Attributes:
        allowed: the page may be shown.
        message: why not, in words for the person (empty when allowed).
        roles: the roles that may see the page (to offer switching to one of them).
        needs_sign_in: the chosen role may see it, after signing in.
    """

    allowed: bool
    message: str = ""
    roles: tuple[str, ...] = ()
    needs_sign_in: bool = False


def page_access(spec: PageSpec, role: str, signed_in: bool) -> Access:
    """What opening ``spec`` as ``role`` needs.

    Example:
        >>> page_access(page_by_path("pages/stockouts.py"), "merchandiser", False).message
        'Stockouts is a page for the category manager or analyst role; you are in the merchandiser role. Choose another role in the sidebar.'
        >>> page_access(page_by_path("pages/catalogue.py"), "analyst", False).message
        'Catalogue needs an analyst sign-in.'
        >>> page_access(page_by_path("pages/catalogue.py"), "analyst", True).allowed
        True
    """
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}; choose one of {list(ROLES)}")
    if role not in spec.roles:
        return Access(
            False,
            f"{spec.title} is a page for the {_roles_in_words(spec.roles)} role; you are in the "
            f"{role} role. Choose another role in the sidebar.",
            roles=spec.roles,
        )
    if requires_login(role) and not signed_in:
        return Access(
            False, f"{spec.title} needs an {role} sign-in.", roles=spec.roles, needs_sign_in=True
        )
    return Access(True, roles=spec.roles)
