"""The integration tier: the deploy's stages over real SSH on the built-in lab."""

from lab.testing import lab, lab_session  # noqa: F401  (fixtures used by the tests)
