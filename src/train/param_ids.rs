//! Parameter identities across a resume.
//!
//! burn's optimizer keeps its per-parameter state (Adam moments) keyed by each parameter's
//! [`ParamId`], which is random per process. A resumed run rebuilds the model from its
//! checkpoint, so its parameters get new ids; we store the ids in visitation order with the
//! checkpoint and give them back to the rebuilt model, so the saved optimizer record applies.

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param, ParamId};
use burn::tensor::Tensor;

struct CollectIds(Vec<u64>);

impl ModuleVisitor for CollectIds {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        self.0.push(param.id.val());
    }
}

/// The ids of the float parameters of `module`, in visitation order.
pub fn param_ids<M: Module>(module: &M) -> Vec<u64> {
    let mut visitor = CollectIds(Vec::new());
    module.visit(&mut visitor);
    visitor.0
}

struct AssignIds<'a> {
    ids: &'a [u64],
    next: usize,
}

impl ModuleMapper for AssignIds<'_> {
    fn map_float<const D: usize>(&mut self, mut param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        if let Some(&id) = self.ids.get(self.next) {
            param.id = ParamId::from(id);
        }
        self.next += 1;
        param
    }
}

/// Gives the float parameters of `module` the ids `ids` (in visitation order). Fails when the
/// module has a different number of parameters (the checkpoint belongs to another model).
pub fn assign_param_ids<M: Module>(module: M, ids: &[u64]) -> anyhow::Result<M> {
    let count = param_ids(&module).len();
    anyhow::ensure!(
        count == ids.len(),
        "the checkpoint lists {} parameters but the model has {count}",
        ids.len()
    );
    let mut mapper = AssignIds { ids, next: 0 };
    Ok(module.map(&mut mapper))
}
