"""Answer paragraphs of the QA notebook that are built from a run's numbers, so its cells stay one short step each."""

from __future__ import annotations

from labkit import safe_text
from labkit.lab import BASELINE


def final_accuracy(checkpoint: dict, params: int, baseline: float = BASELINE) -> str:
    """Question 9: the final test accuracy read from the saved checkpoint, training accuracy beside it, whether the
    baseline was beaten, and how (or what to try)."""
    final = checkpoint["metrics"]["test_accuracy"]
    history = checkpoint["metrics"]["history"]
    recipe, data = checkpoint["train_config"], checkpoint["data"]
    train = history.get("train_accuracy") or []
    beside = f"; training accuracy in the last epoch {train[-1]:.2%}, on the shifted training images" if train else ""
    head = (
        f"**Final test accuracy: {final:.2%}** (the last epoch's, read from the saved checkpoint, on "
        f"{data['sizes']['test']} test images of {safe_text.markdown(data['description'])}{beside}) — "
        f"**{'above' if final > baseline else 'below'} the {baseline:.0%} baseline**. "
    )
    if final > baseline:
        r = recipe
        return head + (
            f"It passed by {(final - baseline) * 100:.1f} points. What achieved it: the `{checkpoint['preset']}` "
            f"preset ({params:,} parameters) trained for {len(history['eval_accuracy'])} epochs with "
            f"{r['optimizer']} (peak learning rate {r['lr']:g}, weight decay {r['weight_decay']:g}, "
            f"{r['schedule']} schedule after a {r['warmup']:.0%} warmup), label smoothing {r['label_smoothing']:g} "
            f"and augmentation '{r['augment']}'; the sizes and recipe were chosen on validation splits (Question 7)."
        )
    return head + (
        f"It missed by {(baseline - final) * 100:.1f} points. Things to try, most likely first: more epochs "
        "(`EPOCHS`), since a ViT learns slowly without a CNN's priors; `shift+flip` augmentation if a mirrored image "
        "keeps its class; a smaller model if training accuracy is far above test accuracy (overfitting), a larger one "
        "if both are low; and checking the data (class folders, image sizes) in Step 1. Why it may fail: too few "
        "images per class for a model that must learn locality itself (Question 8)."
    )


def vit_against_cnn(vit_accuracy: float, cnn_accuracy: float, epochs: int, data: str, train: int, test: int) -> str:
    """Question 8's verdict from the two runs of the QA notebook (same data and split, recipe and epochs)."""
    gap = (cnn_accuracy - vit_accuracy) * 100
    verdict = f"**{gap:.1f} points better**" if gap > 0 else f"**{-gap:.1f} points worse**"
    return (
        f"On {safe_text.markdown(data)}, with the same split ({train} train / {test} test), recipe and {epochs} "
        "epochs, the CNN is "
        f"{verdict} than the ViT ({cnn_accuracy:.2%} against {vit_accuracy:.2%}). One seed each: the benchmark "
        "above gives the spread over seeds."
    )


def position_use(accuracy: dict[str, float], meaningful: float = 0.02) -> str:
    """Question 6's reading of ``explain.position_ablation``: the accuracy drop when the position embeddings are
    shuffled or zeroed, and what it says. Drops under ``meaningful`` (2 points by default: about ten of the built-in
    set's 540 test images) are read as no reliance."""
    intact = accuracy["intact"]
    drops = {name: intact - acc for name, acc in accuracy.items() if name != "intact"}
    listed = ", ".join(f"{name}: **{accuracy[name]:.1%}** ({-drop * 100:+.1f} points)" for name, drop in drops.items())
    head = f"**Does the model use positions?** Test accuracy with the position embeddings intact: **{intact:.1%}**; "
    head += f"{listed}. "
    worst = max(drops, key=drops.get)
    if drops[worst] < meaningful:
        return head + (
            "Neither change costs much: this model classifies mostly from what its patches contain, not from where "
            "they are."
        )
    return head + (
        f"The model reads where each patch came from: with the positions {worst}, it loses "
        f"{drops[worst] * 100:.1f} points, whatever the similarity map above shows about their layout."
    )
