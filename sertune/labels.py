"""RAVDESS label codes: the one place that maps name fields to meanings."""

EMOTIONS = ("neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised")
EMOTION_CODES = {f"{i + 1:02d}": e for i, e in enumerate(EMOTIONS)}
INTENSITIES = {"01": "normal", "02": "strong"}
STATEMENTS = {"01": "Kids are talking by the door", "02": "Dogs are sitting by the door"}
MODALITIES = {"01": "audio-video", "02": "video-only", "03": "audio-only"}
CHANNELS = {"01": "speech", "02": "song"}
N_CLASSES = len(EMOTIONS)


def gender_of(actor: int) -> str:
    """RAVDESS: odd actor numbers are male, even ones female."""
    return "male" if actor % 2 else "female"
