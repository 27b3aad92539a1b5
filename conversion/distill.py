"""The two distillation stages of `fiftynet convert`, both run by `transformers.Trainer` (so on one or several GPUs
through accelerate, with checkpoints and resume):

- layer-wise: each new mixer learns to reproduce its attention layer's output from the teacher's own input to that
  layer (normalized MSE), everything else frozen; all layers at once, or a group at a time (as LoLCATs' block-wise
  attention transfer does for large models), the teacher then stopping after the group's last layer;
- end-to-end: the whole student learns the teacher's next-token distribution (KL) plus the language-modelling loss.
"""

from functools import partial

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedModel, Trainer

from modeling_fiftynet import FiftyNetForCausalLM

from .transplant import teacher_family


class _TeacherDone(Exception):
    """Raised once the last attention layer a step needs has run: the teacher's later layers are not computed."""


class LayerwiseDistillation(nn.Module):
    """Wraps a frozen teacher and the student for layer-wise distillation; only the student's mixers of `layers`
    train. `forward(input_ids)` runs the teacher up to the last of those attention layers (no further), catches the
    input and output of each, and returns `{"loss": mean over layers and blocks of ||mixer(x) - attention(x)||^2 /
    ||attention(x)||^2}`, each block `x` of the batch measured alone.
    """

    def __init__(self, teacher: PreTrainedModel, student: FiftyNetForCausalLM, layers: list[int]):
        super().__init__()
        self.teacher, self.student, self.layers = teacher, student, layers
        self.teacher.requires_grad_(False)
        self.student.requires_grad_(False)
        for layer in layers:
            student.model.layers[layer].mixer.requires_grad_(True)

    def forward(self, input_ids: torch.Tensor, labels: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """`input_ids`: `(batch, seq_len)`; `labels` is accepted for the collator's sake and unused."""
        caught = {}

        def catch(layer, module, args, kwargs, output):
            caught[layer] = (args[0] if args else kwargs["hidden_states"], output[0])
            if len(caught) == len(self.layers):
                raise _TeacherDone

        attentions = [teacher_family(self.teacher).attention(self.teacher, layer) for layer in self.layers]
        hooks = [attention.register_forward_hook(partial(catch, layer), with_kwargs=True)
                 for layer, attention in zip(self.layers, attentions)]
        try:
            with torch.no_grad():
                self.teacher.eval()(input_ids, use_cache=False)
        except _TeacherDone:
            pass
        finally:
            for hook in hooks:
                hook.remove()
        losses = []
        for layer in self.layers:
            inputs, target = caught[layer]
            output = self.student.model.layers[layer].mixer(inputs.float()).float()  # a bfloat16 teacher's too
            target = target.float()
            # Each block normalized by its own target, so that the loss is a mean over blocks: the same whether a
            # batch is split across processes or accumulation steps or not.
            error, power = (output - target).pow(2).flatten(1).mean(1), target.pow(2).flatten(1).mean(1)
            losses.append((error / power.clamp_min(1e-12)).mean())
        return {"loss": torch.stack(losses).mean()}


class DistillationTrainer(Trainer):
    """A Trainer whose loss is `kl_weight * KL(teacher || student) * T^2 + lm_weight * LM loss`, the KL taken per
    token between the softened next-token distributions (temperature `T`)."""

    def __init__(self, *args, teacher: PreTrainedModel, kl_weight: float = 1.0, lm_weight: float = 1.0,
                 temperature: float = 1.0, **kwargs):
        super().__init__(*args, **kwargs)
        self.teacher = teacher.eval().requires_grad_(False).to(self.args.device)
        self.kl_weight, self.lm_weight, self.temperature = kl_weight, lm_weight, temperature

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        outputs = model(**inputs)
        with torch.no_grad():
            teacher_logits = self.teacher(input_ids=inputs["input_ids"]).logits
        student_log_probs = F.log_softmax(outputs.logits.float() / self.temperature, dim=-1)
        teacher_log_probs = F.log_softmax(teacher_logits.float() / self.temperature, dim=-1)
        kl = (teacher_log_probs.exp() * (teacher_log_probs - student_log_probs)).sum(-1).mean()
        loss = self.kl_weight * kl * self.temperature**2 + self.lm_weight * outputs.loss
        return (loss, outputs) if return_outputs else loss
