//! The Models actor: owns the registry's [`ModelsCore`], writes through the Store and answers
//! a change only once it is durable.
use super::ModelsCore;
use crate::now_ms;
use crate::store::StoreHandle;
use mlt_protocol::models::{RegistryReply, RegistryRequest};
use mlt_protocol::serving::{ServingReply, ServingRequest};
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};

/// Messages to the Models actor.
pub enum ModelsMsg {
    /// A request from the named client.
    Request(
        RegistryRequest,
        String,
        RpcReplyPort<Result<RegistryReply, String>>,
    ),
    /// A serving request from the named client (a server, or a client's `rollout`).
    Serving(
        ServingRequest,
        String,
        RpcReplyPort<Result<ServingReply, String>>,
    ),
}

/// The actor.
pub struct ModelsActor;

/// Start-up arguments (and state).
pub struct ModelsArgs {
    /// The registry as loaded.
    pub core: ModelsCore,
    /// Writes.
    pub store: StoreHandle,
}

impl Actor for ModelsActor {
    type Msg = ModelsMsg;
    type State = ModelsArgs;
    type Arguments = ModelsArgs;

    async fn pre_start(
        &self,
        _me: ActorRef<ModelsMsg>,
        a: ModelsArgs,
    ) -> Result<ModelsArgs, ActorProcessingErr> {
        Ok(a)
    }

    async fn handle(
        &self,
        _me: ActorRef<ModelsMsg>,
        msg: ModelsMsg,
        st: &mut ModelsArgs,
    ) -> Result<(), ActorProcessingErr> {
        let mut ops = Vec::new();
        let store = st.store.store.clone();
        match msg {
            ModelsMsg::Request(req, by, reply) => {
                match st.core.handle(req, &by, now_ms(), &store, &mut ops) {
                    Ok(r) => st
                        .store
                        .write(ops, Some(Box::new(move || drop(reply.send(Ok(r)))))),
                    Err(e) => {
                        let _ = reply.send(Err(e));
                    }
                }
            }
            ModelsMsg::Serving(req, by, reply) => {
                match st.core.serving(req, &by, now_ms(), &store, &mut ops) {
                    // A view changes nothing (unless a step ended): answered at once.
                    Ok(r) if ops.is_empty() => {
                        let _ = reply.send(Ok(r));
                    }
                    Ok(r) => st
                        .store
                        .write(ops, Some(Box::new(move || drop(reply.send(Ok(r)))))),
                    Err(e) => {
                        // What was decided before the refusal (an alert) is still written.
                        if !ops.is_empty() {
                            st.store.write(ops, None);
                        }
                        let _ = reply.send(Err(e));
                    }
                }
            }
        }
        Ok(())
    }
}
