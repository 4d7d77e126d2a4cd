"""nlpcurriculum: the NLP implementation curriculum as reproducible software."""
__version__ = "0.1.0"
