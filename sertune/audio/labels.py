"""RAVDESS label codes: the one place that maps name fields to meanings."""

EMOTIONS = ("neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised")
EMOTION_CODES = {f"{i + 1:02d}": e for i, e in enumerate(EMOTIONS)}
INTENSITIES = {"01": "normal", "02": "strong"}
STATEMENTS = {"01": "Kids are talking by the door", "02": "Dogs are sitting by the door"}
N_CLASSES = len(EMOTIONS)


def gender_of(actor: int) -> str:
    """RAVDESS: odd actor numbers are male, even ones female."""
    return "male" if actor % 2 else "female"
