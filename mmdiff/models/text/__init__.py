from .adapter import TextAdapter  # noqa: F401
from .class_embeddings import *  # noqa: F401,F403
