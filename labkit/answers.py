"""The sentences of the notebooks that are read off this run's numbers, so each stays true for the data it ran on."""

from __future__ import annotations

import torch

from labkit import results, safe_text
from labkit.explain import locality
from labkit.lab import AUGMENTED_IMAGES, BASELINE, SIGNIFICANCE, passes
from labkit.metrics import Paired, paired, smoothing_floor
from labkit.presets import get_preset
from labkit.settings import RunConfig

# The settings the settings cell leaves to the student (run.variations), and why a preset has the value it has.
SETTINGS = {"epochs": "epochs (`EPOCHS`)", "augment": "augmentation (`AUGMENT`)"}
CHOICES = {"epochs": "training {} epochs rather than {}", "augment": "augmentation {} rather than {}"}
PRESET_WHY = {
    "epochs": "the preset's own",
    "augment": "the preset's: a shift of up to 2 px keeps an image's class",
}


def recipe_words(recipe: dict, epochs: int) -> str:
    """A stored training recipe in a sentence's worth of words."""
    schedule = (
        f"a {recipe['warmup']:.0%} linear warm-up, then cosine decay to zero"
        if recipe["schedule"] == "cosine"
        else ("a constant rate" + (f" after a {recipe['warmup']:.0%} warm-up" if recipe["warmup"] else ""))
    )
    smoothing = f"label smoothing {recipe['label_smoothing']:g}" if recipe["label_smoothing"] else "no label smoothing"
    decay = f"weight decay {recipe['weight_decay']:g}" if recipe["weight_decay"] else "no weight decay"
    return (
        f"{epochs} epochs of {'AdamW' if recipe['optimizer'] == 'adamw' else 'Adam'} at a peak learning rate of "
        f"{recipe['lr']:g} ({schedule}), {decay}, {smoothing}, in batches of {recipe['batch_size']}, on "
        f"{AUGMENTED_IMAGES[recipe['augment']]}"
    )


def model_words(config: dict, params: int) -> str:
    """A stored model config in a few words: what it is and how large."""
    if config.get("kind") == "cnn":
        return f"the CNN baseline ({params:,} parameters)"
    grid = config["image_size"] // config["patch_size"]
    extras = [
        word
        for key, word in (
            ("shifted_patches", "shifted patch tokens"),
            ("conv_stem", "a convolutional stem"),
            ("mimetic_init", "a locality start"),
        )
        if config.get(key)
    ]
    return (
        f"a ViT of {params:,} parameters ({grid * grid} patches, dim {config['dim']}, {config['depth']} blocks"
        + "".join(f"; {e}" for e in extras)
        + ")"
    )


def curves_reading(recipe, num_classes: int) -> str:
    """The sentence under the learning curves: why training and test losses differ, and what the training accuracy
    was counted on."""
    eps = recipe.label_smoothing
    counted = AUGMENTED_IMAGES[recipe.augment].removeprefix("the ")
    if eps:
        loss = (
            f"The training loss cannot fall below the dotted line: its targets are label-smoothed (ε = {eps:g}), so "
            f"even a perfect model pays their entropy, {smoothing_floor(eps, num_classes):.3f} nats, while the test "
            "loss is measured against plain labels."
        )
    else:
        loss = "Both losses are measured against plain labels (no label smoothing)."
    return (
        f"{loss} Training accuracy is counted on {counted}, as the batches passed. The right panel shows the test "
        "error on a log axis, where changes in the last epochs show (epochs without a single error, if any, sit on "
        "the dotted line)."
    )


def disagreement(comparison: Paired, first: str, second: str) -> str:
    """The evidence of a paired comparison, in words."""
    a, b, p = comparison.only_a, comparison.only_b, comparison.p
    return f"right only for {first}: {a} images, only for {second}: {b}; p = {p:.2g}"


def position_evidence(intact: torch.Tensor, mean_position: torch.Tensor) -> str:
    """Question 6's evidence: test accuracy with the position embeddings, and with every patch given their mean."""
    comparison = paired(intact, mean_position)
    used = comparison.p < SIGNIFICANCE and comparison.difference > 0
    reading = "so the model uses where its patches are" if used else "within chance"
    return (
        f"**Evidence.** Test accuracy {intact.float().mean():.1%}; with every patch given the mean patch position "
        f"(where each lies removed, the offset all share kept) {mean_position.float().mean():.1%}, {reading} "
        f"({disagreement(comparison, 'the intact model', 'the other')}; exact McNemar test)."
    )


def position_reading(trained: torch.Tensor, start: torch.Tensor) -> str:
    """What the position-similarity figure shows: neighbours against positions two or more apart, trained and at
    the start."""
    (near, far), (start_near, start_far) = locality(trained), locality(start)
    numbers = (
        f"neighbours {near:+.2f}, positions two or more apart {far:+.2f}; at the start {start_near:+.2f} and "
        f"{start_far:+.2f}"
    )
    if start_near - start_far > 0.1:
        kept = "kept it" if near - far > 0.1 else "lost it"
        return f"The 2-D layout was put in by the sine-cosine start, and training {kept} ({numbers})."
    if near - far > 0.1:
        return f"Training taught the embeddings the 2-D layout, as in the paper's Fig. 7 ({numbers})."
    return f"No 2-D layout shows ({numbers})."


def _value(settings: RunConfig, what: str) -> object:
    """The value a run's recipe has for one of SETTINGS, whether the student set it or the preset did."""
    return getattr(get_preset(settings.preset).recipe(settings.epochs, settings.augment), what)


def tuning(settings: RunConfig, right: torch.Tensor, variants: dict[str, tuple[RunConfig, torch.Tensor]]) -> str:
    """Question 7: the preset's choice and the settings measured on this data, one row each, with each variant's
    paired effect on the test images against this run."""
    preset = get_preset(settings.preset)
    rows = ["| setting | values tried | chosen | why | effect on the final test accuracy |", "|---|---|---|---|---|"]
    rows.append(
        f"| model and recipe (`PRESET`) | the lab benchmark's presets and sweeps | `{preset.name}` | {preset.why} | "
        f"{results.preset_effect(preset.name)} |"
    )
    for what, (other, other_right) in variants.items():
        chosen, tried = _value(settings, what), _value(other, what)
        why = PRESET_WHY[what] if getattr(settings, what) is None else "my choice in the settings cell"
        comparison = paired(right, other_right)
        effect = (
            f"{other_right.float().mean():.1%} with {tried}, so {comparison.difference * 100:+.1f} points for mine "
            f"({disagreement(comparison, 'mine', 'the other')})"
        )
        rows.append(f"| {SETTINGS[what]} | {chosen}, {tried} | {chosen} | {why} | {effect} |")
    return (
        "The lab's benchmark chose each preset's model and recipe on its own sets (`benchmarks/README.md`). I measured "
        "the two settings left to me, each by one more run that differs from mine in it alone:"
        "\n\n" + "\n".join(rows) + "\n\nAll on the same test images; p: an exact McNemar test on those where the runs "
        "disagree. One seed each, so the spread between seeds is unknown."
    )


def vit_against_cnn(vit: dict, cnn: dict, vit_right: torch.Tensor, cnn_right: torch.Tensor) -> str:
    """Question 8's recommendation for the provided data, weighed from this run: the paired accuracy difference, the
    training time of each, and how many images per class there were to learn from."""
    comparison = paired(cnn_right, vit_right)
    seconds = [m["metrics"]["history"]["seconds"] for m in (vit, cnn)]
    per_class = vit["data"]["sizes"]["train"] // len(vit["classes"])
    beyond = comparison.p < SIGNIFICANCE
    vit_wins = beyond and comparison.difference < 0
    accuracy = (
        f"the CNN reached {cnn_right.float().mean():.1%}, the ViT {vit_right.float().mean():.1%} "
        f"({'beyond' if beyond else 'within'} chance: {disagreement(comparison, 'the CNN', 'the ViT')})"
    )
    time = f"the ViT trained in {seconds[0]:.0f} s, the CNN in {seconds[1]:.0f} s"
    if vit_wins:
        return f"**For this data I would use the ViT**: {accuracy}; {time}. One seed each."
    return (
        f"**For this data I would use the CNN**: {accuracy}; {time}. With about {per_class} training images per "
        "class, the CNN has built in the locality that the ViT must learn from them; the paper's ViTs overtook "
        "ResNets only after pre-training on 14 M–300 M images. One seed each."
    )


def final_accuracy(
    checkpoint: dict,
    params: int,
    settings: RunConfig,
    right: torch.Tensor,
    variants: dict[str, tuple[RunConfig, torch.Tensor]],
) -> str:
    """Question 9: the final accuracy against the baseline, the model in a phrase, and what each setting measured in
    Question 7 did to it."""
    final = checkpoint["metrics"]["test_accuracy"]
    history, test = checkpoint["metrics"]["history"], checkpoint["data"]["sizes"]["test"]
    text = (
        f"**Final test accuracy: {final:.2%}** ({round(final * test)} of {test} test images, the last epoch's): "
        f"**{'above' if passes(final) else 'below'} the {BASELINE:.0%} baseline**, by "
        f"{abs(final - BASELINE) * 100:.1f} points. I trained the `{safe_text.markdown(checkpoint['preset'])}` preset, "
        f"{model_words(checkpoint['model_config'], params)}, for {len(history['eval_accuracy'])} epochs (Step 3)."
    )
    effects = []
    for what, (other, other_right) in variants.items():
        comparison = paired(right, other_right)
        verdict = "beyond chance" if comparison.p < SIGNIFICANCE else "within chance"
        effects.append(
            f"{CHOICES[what].format(_value(settings, what), _value(other, what)).replace(' 1 epochs', ' 1 epoch')} "
            "changed it by "
            f"{comparison.difference * 100:+.1f} points ({verdict}, p = {comparison.p:.2g})"
        )
    text += f" Measured on this data (Question 7): {'; '.join(effects)}."
    if not passes(final):
        text += (
            " To try next: more epochs, since a ViT learns slowly without a CNN's priors; a smaller model if training "
            "accuracy is far above test accuracy; and checking the images in Step 1."
        )
    return text
