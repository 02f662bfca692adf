"""The paste.deploy filter: sessions for any app of an ini file's pipeline.

::

    [filter:session]
    use = egg:aerospike-wsgi-session
    hosts = 10.0.0.1:3000 10.0.0.2:3000
    namespace = sessions
    secret =
        new-secret-of-at-least-32-random-bytes
        older-secret-still-accepted-for-a-while
    max_age = 8h

    [pipeline:main]
    pipeline = session myapp

Every option of the middleware and of the store can be given; see
:mod:`aerospike_wsgi_session.settings` for how the text is read. Values of
``[DEFAULT]`` reach the filter the way paste passes them: through
``%(name)s`` interpolation or ``get option = name``. Paste leaves out a filter
option that has the same name as a ``[DEFAULT]`` key, so give defaults names
of their own.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .settings import parse_settings

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication

    from .middleware import SessionMiddleware

logger = logging.getLogger(__name__)


def filter_app_factory(
    app: WSGIApplication, global_conf: Mapping[str, Any], **local_conf: str
) -> SessionMiddleware:
    """Wrap ``app`` in a :class:`SessionMiddleware` configured by the ini file.

    :param app: the next application of the pipeline.
    :param global_conf: paste's global configuration; not read for options.
    :param local_conf: the filter section's options, as text.
    :raises ValueError: an option is unknown, missing or invalid, at load
        time; the message names the option.
    """
    middleware = parse_settings(local_conf).wrap(app)
    logger.debug("session filter ready: %r", middleware.manager.store)
    return middleware
