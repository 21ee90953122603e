from .backbones import *  # noqa: F401,F403
from .conditioning import *  # noqa: F401,F403
from .necks import *  # noqa: F401,F403
from .segmentors import *  # noqa: F401,F403
from .pretrainers import *  # noqa: F401,F403
