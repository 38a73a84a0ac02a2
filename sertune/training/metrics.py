"""UAR (unweighted average recall = macro recall) and the confusion matrix."""

from __future__ import annotations

import torch


def confusion_matrix(y_true: torch.Tensor, y_pred: torch.Tensor, n_classes: int) -> torch.Tensor:
    """Rows: true class, columns: predicted class."""
    idx = y_true.long() * n_classes + y_pred.long()
    return torch.bincount(idx.cpu(), minlength=n_classes * n_classes).reshape(n_classes, n_classes)


def per_class_recall(cm: torch.Tensor) -> torch.Tensor:
    """NaN for classes absent from the reference, so they drop out of the mean."""
    support = cm.sum(dim=1).double()
    return torch.where(support > 0, cm.diag().double() / support.clamp(min=1), torch.nan)


def uar(cm: torch.Tensor) -> float:
    return float(per_class_recall(cm).nanmean())
