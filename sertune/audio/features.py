"""Audio -> raw MFCC frames. Normalization is not done here: it needs the training speakers."""

from __future__ import annotations

import re

import librosa
import numpy as np
import scipy.fft
import soundfile as sf
from threadpoolctl import ThreadpoolController

from sertune.config import FeatureConfig
from sertune.errors import CorpusError


# libsndfile's header log, e.g. "data : 32000 (should be 15978)": the header promises more
# audio than the file holds, and libsndfile quietly reads what is there.
_SHORT_DATA = re.compile(r"^\s*data\s*:\s*(\d+)\s*\(should be (\d+)\)", re.MULTILINE)


def decode(path: str) -> tuple[np.ndarray, int]:
    """(frames, channels) float32 and the file's rate; a truncated file is an error, not a
    shorter clip."""
    try:
        with sf.SoundFile(path) as f:
            promised, log = f.frames, f.extra_info
            y = f.read(dtype="float32", always_2d=True)
            sr = f.samplerate
    except Exception as e:  # libsndfile reports corrupt/unsupported data as several types
        raise CorpusError(f"{path}: cannot decode audio ({str(e).splitlines()[0]})") from None
    short = _SHORT_DATA.search(log)
    if short and int(short.group(2)) < int(short.group(1)):
        raise CorpusError(f"{path}: truncated (header promises {short.group(1)} bytes of audio, "
                          f"the file holds {short.group(2)})")
    if y.shape[0] < promised:
        raise CorpusError(f"{path}: truncated (header promises {promised} frames, decoded {y.shape[0]})")
    if y.shape[0] == 0:
        raise CorpusError(f"{path}: empty audio (0 samples)")
    if not np.isfinite(y).all():
        raise CorpusError(f"{path}: audio contains NaN or infinite samples")
    return y, sr


def audio_warning(y: np.ndarray, mono: np.ndarray) -> str | None:
    """What a researcher must hear about a decoded file: digital silence, or stereo channels
    that cancel when mixed to mono (one channel phase-inverted)."""
    if not np.any(y):
        return "digital silence (every sample is 0)"
    peak = float(np.abs(y).max())
    if y.shape[1] > 1 and float(np.abs(mono).max()) <= 1e-3 * peak:
        return "stereo channels cancel when mixed to mono (one is the other inverted?): the mix is silent"
    return None


def load_audio(path: str, sample_rate: int) -> tuple[np.ndarray, int]:
    """Mono float32 at ``sample_rate``, plus the file's own rate; one-line errors for bad files."""
    y, sr, _ = _load_audio(path, sample_rate)
    return y, sr


def _load_audio(path: str, sample_rate: int) -> tuple[np.ndarray, int, str | None]:
    y2, sr = decode(path)
    y = y2.mean(axis=1) if y2.shape[1] > 1 else y2[:, 0]
    warning = audio_warning(y2, y)
    if sr != sample_rate:
        y = librosa.resample(y, orig_sr=sr, target_sr=sample_rate, res_type="soxr_hq")
    return np.ascontiguousarray(y, dtype=np.float32), sr, warning


_BLAS: ThreadpoolController | None = None


def _one_blas_thread():
    """The mel product on one BLAS thread, so MFCC are the same bits wherever they are computed:
    split over more threads the product rounds differently (up to 1e-4 on RAVDESS), which made a
    store's shards and hash, and `predict`'s features, depend on the machine's thread count."""
    global _BLAS
    if _BLAS is None:
        _BLAS = ThreadpoolController()  # finds the BLAS libraries once; each limit is then microseconds
    return _BLAS.limit(limits=1, user_api="blas")


class MfccExtractor:
    """One per worker: the mel filterbank is built once, not per file."""

    def __init__(self, config: FeatureConfig):
        self.config = config.validate()
        c = self.config
        self.mel_basis = librosa.filters.mel(sr=c.sample_rate, n_fft=c.n_fft, n_mels=c.n_mels, fmin=c.fmin, fmax=c.fmax)
        window = librosa.filters.get_window("hann", c.win_length, fftbins=True)
        self.window = librosa.util.pad_center(window, size=c.n_fft).astype(np.float32)

    def power_spectrogram(self, y: np.ndarray) -> np.ndarray:
        """|STFT|^2, (1 + n_fft/2, frames): librosa.stft's result with center=True and its
        default zero padding, computed as one framed FFT. librosa.stft's general blocking made
        it 4x slower on 3-second clips, and it dominated the whole feature extraction."""
        c = self.config
        padded = np.pad(y, c.n_fft // 2, mode="constant")
        frames = librosa.util.frame(padded, frame_length=c.n_fft, hop_length=c.hop_length, axis=0)
        return np.abs(scipy.fft.rfft(frames * self.window, axis=1).T) ** 2

    def _decoded(self, path: str, whole: bool) -> tuple[np.ndarray, int, str | None]:
        """The file decoded and resampled; the last file cut into segments is kept, so a long
        recording that a manifest cuts into many segments is decoded once, not once per segment."""
        if whole:
            return _load_audio(path, self.config.sample_rate)
        if getattr(self, "_last", None) is None or self._last[0] != path:
            self._last = (path, _load_audio(path, self.config.sample_rate))
        return self._last[1]

    def forget(self) -> None:
        """Drop the kept recording (an hour of audio is 230 MB of float32)."""
        self._last = None

    def __call__(self, path: str) -> tuple[np.ndarray, int]:
        """(frames, n_mfcc) float32 MFCC and the file's original sample rate."""
        mfcc, sr, _ = self.extract(path)
        return mfcc, sr

    def extract(self, path: str, start: float | None = None, end: float | None = None) -> tuple[np.ndarray, int, str | None]:
        """MFCC, the file's sample rate, and a warning about its content (or None); ``start`` and
        ``end`` (seconds) take a segment of a longer recording."""
        c = self.config
        y, sr, warning = self._decoded(path, whole=start is None and end is None)
        y = segment(y, c.sample_rate, start, end, path)
        if len(y) < c.win_length:
            raise CorpusError(f"{path}: too short ({len(y)} samples, shorter than one {c.win_ms} ms window)")
        with _one_blas_thread():
            mel = self.mel_basis @ self.power_spectrogram(y)
        mfcc = librosa.feature.mfcc(S=librosa.power_to_db(mel), n_mfcc=c.n_mfcc)
        return np.ascontiguousarray(mfcc.T, dtype=np.float32), sr, warning


def segment(y: np.ndarray, sample_rate: int, start: float | None, end: float | None, path: str) -> np.ndarray:
    """Seconds ``start`` to ``end`` of a signal (None: from its start, to its end); a segment
    that reaches past the recording is an error, not a shorter clip."""
    if start is None and end is None:
        return y
    duration = len(y) / sample_rate
    if (end if end is not None else start) > duration + 1e-3:
        raise CorpusError(f"{path}: segment {start or 0:g}-{'end' if end is None else f'{end:g}'} s reaches past "
                          f"the recording ({duration:.3f} s)")
    return y[int(round((start or 0) * sample_rate)): None if end is None else int(round(end * sample_rate))]
