"""Logit squeezing: penalize the mean squared logit. Kannan et al. 2018."""

from pydantic import Field

from harness.regularizers import Params, Regularizer, register


class LogitPenaltyParams(Params):
    value: float = Field(..., ge=0.0)


@register
class LogitPenalty(Regularizer[LogitPenaltyParams]):  # self.params is a LogitPenaltyParams
    name = "logit_penalty"
    reference = "Kannan et al. 2018"

    def loss(self, state, loss, batch, logits):
        return loss + self.params.value * logits.pow(2).mean()
