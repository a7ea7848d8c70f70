"""What a step's templates see of an upstream step's stored outputs."""

from __future__ import annotations

from wanflow.pipelines.model import StepSpec
from wanflow.pipelines.templating import OutputList, StepOutputs
from wanflow.state.cache import StepOutputsData


def template_outputs(step: StepSpec, outputs: StepOutputsData | None) -> StepOutputs:
    """A step's stored outputs as templates of later steps see them."""
    assert outputs is not None
    available: dict[str, object] = {}
    produced = step.model.outputs_for({})  # the model's fields; presence below reflects the run
    if outputs.images or "images" in produced:
        available["images"] = OutputList(outputs.images, owner=f"steps.{step.id}")
    if (step.op is not None or step.model.open_weights is not None) and len(outputs.images) == 1:
        # an op's one image, or an open-weights step's one frame, is also `steps.<id>.image`
        available["image"] = outputs.images[0]
    if outputs.video is not None:
        available["video"] = outputs.video
    if outputs.text is not None:
        available["text"] = outputs.text
    return StepOutputs(step.id, step.model.name, available)
