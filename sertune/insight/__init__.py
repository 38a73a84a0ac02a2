"""Using trained models: saved model records (``models``), prediction on new audio
(``predict``), and what the attention vectors do (``explain``). Torch and librosa are imported
here, so the command line imports this package only when a command runs."""
