"""The sentences of the notebooks that are read off this run's numbers, so each stays true for the data it ran on."""

from __future__ import annotations

import torch

from labkit.data import LabData
from labkit.handin import safe_text
from labkit.lab import AUGMENTED_IMAGES, BASELINE, BUILTIN, SIGNIFICANCE, passes
from labkit.metrics import Paired, paired, smoothing_floor
from labkit.notebook import results
from labkit.notebook.explain import locality
from labkit.presets import get_preset
from labkit.settings import RunConfig
from labkit.small_data import guided_blocks

SETTINGS = {"epochs": "epochs (`EPOCHS`)", "augment": "augmentation (`AUGMENT`)"}  # what Q7 varies (run.variations)
EPOCHS_WHY = "the preset's, chosen with its model (row above)"
AUGMENT_WHY = {  # why a preset's own augmentation was kept (no preset mirrors images)
    "none": "the preset's: its recipe trains on the images as they are",
    "shift": "the preset's: a shift of up to 2 px keeps an image's class",
}
ONE_SEED = "one seed each, so the spread between seeds is unknown"
Variants = dict[str, tuple[RunConfig, torch.Tensor]]  # per setting varied: the other run's settings, its right answers


def data_summary(data: LabData) -> str:
    """What the images are, as stored and as the model reads them, the split, and the images per class."""
    k, n_train, n_test = len(data.classes), len(data.train), len(data.test)
    train, test = (torch.bincount(s.y, minlength=k).tolist() for s in (data.train, data.test))
    names = [safe_text.markdown(c) for c in data.classes]  # folder names are the student's: shown, never run
    rows = [f"| {i} | {c} | {a} | {b} |" for i, (c, a, b) in enumerate(zip(names, train, test, strict=True))]
    size = data.train.x.shape[-1]
    share = size**2 / data.stored_values
    kept = f"{share:.1%} of the {data.stored_values:,.0f} values of a stored image"
    if share >= 1:
        kept = "as many values as stored" if share == 1 else f"{share:.2g} times as many values as stored"
    return (
        f"**Source:** {safe_text.markdown(data.description)}  \n"
        f"**As stored:** {safe_text.markdown(data.stored)}. The model reads each image as {size}×{size} "
        f"grayscale, {size * size} values: {kept}.  \n"
        f"**Split:** {k} classes, {n_train} train / {n_test} test images, stratified (split seed "
        f"{data.config.split_seed}); training pixels in [0, 1]: mean {data.mean:.3f}, std {data.std:.3f}.\n\n"
        "| index | class | train | test |\n|---|---|---|---|\n" + "\n".join(rows)
    )


def confusion_summary(matrix: torch.Tensor, classes: list[str]) -> str:
    """The Markdown sentence under the confusion matrix: its weakest classes and commonest confusions, ties named."""
    classes = [safe_text.markdown(c) for c in classes]
    per_class = matrix.diagonal() / matrix.sum(1).clamp(min=1)
    off = matrix.clone().fill_diagonal_(0)
    if off.sum() == 0:
        return "Every test image is on the diagonal: no class is confused with another."
    weakest = [classes[i] for i in (per_class == per_class.min()).nonzero().flatten().tolist()]
    worst = int(off.max())
    pairs = [f"{classes[t]} taken for {classes[p]}" for t, p in (off == worst).nonzero().tolist()]
    return (
        f"{int(off.sum())} of {int(matrix.sum())} test images are off the diagonal. Weakest: {', '.join(weakest)} "
        f"({per_class.min().item():.1%}{' each' if len(weakest) > 1 else ''}); most frequent mistake: "
        f"{'; '.join(pairs)} ({worst} image{'s' if worst > 1 else ''}{' each' if len(pairs) > 1 else ''})."
    )


def recipe_words(recipe: dict, epochs: int) -> str:
    schedule = "a constant rate" + (f" after a {recipe['warmup']:.0%} warm-up" if recipe["warmup"] else "")
    if recipe["schedule"] == "cosine":
        schedule = f"a {recipe['warmup']:.0%} linear warm-up, then cosine decay to zero"
    peak = "" if recipe["schedule"] == "constant" else "peak "
    smoothing = f"label smoothing {recipe['label_smoothing']:g}" if recipe["label_smoothing"] else "no label smoothing"
    decay = f"weight decay {recipe['weight_decay']:g}" if recipe["weight_decay"] else "no weight decay"
    return (
        f"{epochs} epochs of {'AdamW' if recipe['optimizer'] == 'adamw' else 'Adam'} at a {peak}learning rate of "
        f"{recipe['lr']:g} ({schedule}), {decay}, {smoothing}, in batches of {recipe['batch_size']}, on "
        f"{AUGMENTED_IMAGES[recipe['augment']]}"
    )


def extras(config: dict) -> list[str]:
    """What a stored ViT config adds to the paper's model, in words."""
    words = {"shifted_patches": "shifted patch tokens", "conv_stem": "a convolutional stem", "init": "a locality start"}
    return [word for key, word in words.items() if config.get(key) not in (None, False, 0, "random")]


def model_words(config: dict, params: int) -> str:
    if config.get("kind") == "cnn":
        return f"the CNN baseline ({params:,} parameters)"
    g = config["image_size"] // config["patch_size"]
    added = "".join(f"; {e}" for e in extras(config))
    return f"a ViT of {params:,} parameters ({g * g} patches, dim {config['dim']}, {config['depth']} blocks{added})"


def model_extras(config: dict) -> str:
    """Question 6's line on what this model adds to the paper's patch and position embeddings, if anything."""
    lines = []
    if config.get("shifted_patches"):
        lines.append(
            "My model adds shifted patch tokens (SPT): each patch vector also holds its patch in four diagonal "
            "half-patch shifts of the image, whose filled edges can mark the border patches."
        )
    if config.get("conv_stem"):
        lines.append(
            "My model replaces the patch cut with a small convolutional stem (the paper's hybrid, §3.1): each token is "
            "one position of the stem's feature map, not a patch's pixels."
        )
    if config.get("init") == "locality":
        owner = "Its" if lines else "My model's"
        start = "sets positions to a 2-D sine-cosine table and attention so a token first attends to tokens like itself"
        lines.append(f"{owner} locality start {start}.")
    return " ".join(lines)


def curves_reading(recipe, num_classes: int, history) -> str:
    """The sentences under the learning curves: test accuracy's peak, end and late range; why losses differ."""
    acc = history.eval_accuracy
    best = max(range(len(acc)), key=acc.__getitem__)
    tail = acc[-max(1, len(acc) // 4) :]
    reading = (
        f"Test accuracy peaked at {acc[best]:.1%} in epoch {best + 1} and ended at {acc[-1]:.1%}; over the last "
        f"{len(tail)} epochs it stayed between {min(tail):.1%} and {max(tail):.1%}. Training accuracy is counted on "
        f"{AUGMENTED_IMAGES[recipe.augment].removeprefix('the ')}, as the batches passed."
    )
    if eps := recipe.label_smoothing:
        reading += (
            f" The training loss cannot fall below the dotted line: its targets are label-smoothed (ε = {eps:g}), so "
            f"even a perfect model pays their entropy, {smoothing_floor(eps, num_classes):.3f} nats."
        )
    return reading


def disagreement(c: Paired, first: str, second: str) -> str:
    return f"right only for {first}: {c.only_a} images, only for {second}: {c.only_b}; p = {c.p:.2g}"


def position_evidence(intact: torch.Tensor, mean_position: torch.Tensor) -> str:
    """Question 6's evidence: test accuracy with the position embeddings, and with every patch given their mean."""
    comparison = paired(intact, mean_position)
    reading = f"within chance on {len(intact)} test images"
    if comparison.p < SIGNIFICANCE:
        reading = "so the model uses where its patches are" if comparison.difference > 0 else "higher beyond chance"
    return (
        f"**Evidence.** Test accuracy {intact.float().mean():.1%}; with every patch given the mean position embedding "
        f"(position removed, shared part kept) {mean_position.float().mean():.1%}, {reading} "
        f"({disagreement(comparison, 'the intact model', 'the other')}; exact McNemar test)."
    )


def position_reading(trained: torch.Tensor, start: torch.Tensor, scale: tuple[float, float]) -> str:
    """What the position-similarity figure shows: its scale, and near against far positions, trained and at start."""
    (near, far), (start_near, start_far) = locality(trained), locality(start)
    then = f"at the start {start_near:+.2f} and {start_far:+.2f}"
    numbers = f"neighbours {near:+.2f}, positions two or more apart {far:+.2f}; {then}"
    span = f"Colours span {scale[0]:+.2f} to {scale[1]:+.2f}; "
    if start_near - start_far > 0.1:
        kept = "kept it" if near - far > 0.1 else "lost it"
        return span + f"the sine-cosine start put the 2-D layout in, and training {kept} ({numbers})."
    if near - far > 0.1:
        return span + f"training taught the embeddings the 2-D layout, as in the paper's Fig. 7 ({numbers})."
    return span + f"no 2-D layout shows ({numbers})."


def _chooser(settings: RunConfig) -> str:
    return "the lab's default" if settings.preset == RunConfig().preset else "my choice"


def _value(settings: RunConfig, what: str) -> object:
    """The value a run's recipe has for one of SETTINGS, whether the student set it or the preset did."""
    return getattr(get_preset(settings.preset).recipe(settings.epochs, settings.augment), what)


def tuning(settings: RunConfig, right: torch.Tensor, variants: Variants) -> str:
    """Question 7's table: the preset (the lab's choice) and each setting varied, with its paired effect on this run."""
    preset = get_preset(settings.preset)
    why = f"{_chooser(settings)}: {preset.why}"
    rows = ["| setting | values tried | chosen | why | effect on the final test accuracy |", "|---|---|---|---|---|"]
    lab = f"| model and recipe (`PRESET`) | not varied here | `{preset.name}` | {why} |"
    rows.append(f"{lab} {results.preset_effect(preset.name, settings.data == BUILTIN)} |")
    for what, (other, other_right) in variants.items():
        chosen, tried = _value(settings, what), _value(other, what)
        why = EPOCHS_WHY if what == "epochs" else AUGMENT_WHY.get(chosen)
        why = why if getattr(settings, what) is None else "my choice in the settings cell"
        comparison = paired(right, other_right)
        effect = f"{other_right.float().mean():.1%} with {tried}, so {comparison.difference * 100:+.1f} points for mine"
        evidence = disagreement(comparison, "mine", "the other")
        rows.append(f"| {SETTINGS[what]} | {chosen}, {tried} | {chosen} | {why} | {effect} ({evidence}) |")
    varied = ("no setting", "one setting", "two settings")[len(variants)]  # variations() gives one or two
    intro = f"I varied {varied}, each by one more run that differs from mine in it alone:"
    outro = f"Same test images, with an exact McNemar test on those where the runs disagree; {ONE_SEED}."
    return "\n\n".join([intro, "\n".join(rows), outro])


def vit_against_cnn(vit: dict, cnn: dict, vit_right: torch.Tensor, cnn_right: torch.Tensor) -> str:
    """Question 8's recommendation, weighed from this run: paired accuracy difference, times, images per class."""
    comparison = paired(cnn_right, vit_right)
    beyond = comparison.p < SIGNIFICANCE
    histories = [m["metrics"]["history"] for m in (vit, cnn)]
    times = [f"{len(h['eval_accuracy'])} epochs in {h['seconds']:.0f} s" for h in histories]
    accuracy = (
        f"the CNN reached {cnn_right.float().mean():.1%}, the ViT {vit_right.float().mean():.1%} "
        f"({'beyond' if beyond else 'within'} chance: {disagreement(comparison, 'the CNN', 'the ViT')}); the ViT "
        f"trained {times[0]}, the CNN {times[1]}"
    )
    recipes = [{k: v for k, v in m["train_config"].items() if k != "epochs"} for m in (vit, cnn)]
    differ = " Their recipes differ too, so this does not isolate the architecture." if recipes[0] != recipes[1] else ""
    caveat = differ + f" {ONE_SEED.capitalize()}."
    vit_first = comparison.difference < 0 if beyond else histories[0]["seconds"] < histories[1]["seconds"]
    if not beyond:
        accuracy += f"; the {'ViT' if vit_first else 'CNN'} reached its result sooner"
    if vit_first:
        return f"**For this data I would use the ViT**: {accuracy}.{caveat}"
    per_class = vit["data"]["sizes"]["train"] // len(vit["classes"])
    given = " and ".join(extras(vit["model_config"]))
    prior = f"this ViT gets part of it from {given} and must learn the rest" if given else "this ViT must learn it"
    return (
        f"**For this data I would use the CNN**: {accuracy}. The CNN has locality built into every layer; {prior} "
        f"from about {per_class} training images per class." + caveat
    )


def taught_vit(
    taught: torch.Tensor, vit: torch.Tensor, cnn: torch.Tensor, seconds: float, cnn_seconds: float, depth: int
) -> str:
    """Question 8's taught ViT: which blocks were taught, its accuracy and time, its paired leads over the other two."""
    leads = {who: paired(taught, other) for who, other in (("plain ViT", vit), ("CNN", cnn))}
    said = [f"{c.difference * 100:+.1f} points on the {who} (p = {c.p:.2g})" for who, c in leads.items()]
    blocks = ", ".join(str(b + 1) for b in guided_blocks(depth))
    return (
        f"Taught by this CNN (locality guidance, Li et al., 2022: its blocks {blocks} of {depth} learn to imitate the "
        f"CNN's feature maps), the same ViT reached {taught.float().mean():.1%} in {seconds:.0f} s plus the CNN's "
        f"{cnn_seconds:.0f} s: {said[0]} and {said[1]}."
    )


def final_accuracy(checkpoint: dict, params: int, settings: RunConfig, right: torch.Tensor, variants: Variants) -> str:
    """Question 9: the final accuracy against the baseline, the model in a phrase, and which Q7 settings mattered."""
    final = checkpoint["metrics"]["test_accuracy"]
    history, test = checkpoint["metrics"]["history"], checkpoint["data"]["sizes"]["test"]
    text = (
        f"**Final test accuracy: {final:.2%}** ({round(final * test)} of {test} test images, the last epoch's): "
        f"**{'above' if passes(final) else 'below'} the {BASELINE:.0%} baseline**, by "
        f"{abs(final - BASELINE) * 100:.1f} points. I trained the `{safe_text.markdown(checkpoint['preset'])}` "
        f"preset ({_chooser(settings)}; Question 7), {model_words(checkpoint['model_config'], params)}, for "
        f"{len(history['eval_accuracy'])} epochs."
    )
    mattered, did_not = [], []
    for what, (other, other_right) in variants.items():
        comparison = paired(right, other_right)
        (mattered if comparison.p < SIGNIFICANCE else did_not).append(
            f"{SETTINGS[what].split(' (')[0]} {_value(settings, what)} rather than {_value(other, what)} "
            f"({comparison.difference * 100:+.1f} points, p = {comparison.p:.2g})"
        )
    if variants:
        changed = "; ".join(mattered) or "nothing"
        also = f", and {'; '.join(did_not)} did not" if did_not else ""
        text += f" Of what I varied on this data, {changed} changed it beyond chance{also}."
    if not passes(final):
        text += " " + next_steps(history, checkpoint["preset"])
    return text


def next_steps(history: dict, preset: str) -> str:
    """What a run below the baseline should try, read from its own curves: overfitting, or not fitting at all."""
    train, test, losses = history["train_accuracy"][-1], history["eval_accuracy"][-1], history["eval_loss"]
    lowest = losses.index(min(losses)) + 1
    fast = " (the `fast` preset)" if preset == "reference" else ""  # the only preset larger than fast
    if train - test > 0.15 or lowest <= 0.75 * len(losses):
        turned = f"test loss lowest in epoch {lowest} of {len(losses)}"
        why = f"It fits its training images better than its test images ({train:.0%} against {test:.0%}; {turned})"
        if train <= test:
            why = f"Its test loss was lowest in epoch {lowest} of {len(losses)}"
        return f"{why}: more images, augmentation that keeps the classes, or a smaller model{fast} should help."
    fast = "" if preset == "fast" else ", or the `fast` preset, whose recipe trains a small model for longer,"
    return f"It does not fit even its training images ({train:.0%} in the last epoch): more epochs{fast} should help."
