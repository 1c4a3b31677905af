//! The container event stream. Exits scheduled with `ExitAfter` happen lazily, so an open stream
//! wakes itself at the next deadline and applies it: a PLEG fed by events sees such exits even
//! when nothing else calls the runtime (and paused-time tests advance to them on their own).

use super::FakeRuntime;
use crate::Result;
use crate::api::ContainerEventResponse;
use futures::StreamExt;
use futures::stream::BoxStream;
use tokio::sync::mpsc::UnboundedReceiver;

pub(super) fn stream(
    fake: FakeRuntime,
    receiver: UnboundedReceiver<ContainerEventResponse>,
) -> BoxStream<'static, Result<ContainerEventResponse>> {
    futures::stream::unfold((fake, receiver), |(fake, mut receiver)| async move {
        loop {
            let next_exit = fake.lock().next_exit_deadline();
            let event = match next_exit {
                Some(deadline) => tokio::select! {
                    event = receiver.recv() => event,
                    () = tokio::time::sleep_until(deadline) => {
                        fake.lock().reap();
                        continue;
                    }
                },
                None => receiver.recv().await,
            };
            return event.map(|event| (Ok(event), (fake, receiver)));
        }
    })
    .boxed()
}
