"""A toy metric in one file: energy per sample estimated from MACs (4.6 pJ per fp32
multiply-accumulate at 45 nm, Horowitz 2014), in millijoules."""

from slimnas.measure import BaseMetric, register_metric

PJ_PER_MAC = 4.6


@register_metric("energy_mj")
class Energy(BaseMetric):
    unit, when = "mJ", "model"
    units = {"": 1.0, "mj": 1.0, "uj": 1e-3, "nj": 1e-6}
    description = "estimated energy per sample (4.6 pJ per MAC)"

    def measure(self, ctx):
        from slimnas.measure import count_macs

        return count_macs(ctx.model, ctx.input_shape) * PJ_PER_MAC * 1e-9
