//! A second worker that only finds people (HOG on the CPU) in video frames, so that on the CPU
//! path frame `n + 1`'s people are found while the inference worker embeds and tracks frame
//! `n`: two cores instead of one (wasm has no threads without a nightly build). It runs the
//! same worker code and needs no model. When it cannot start, dies or fails on a frame, the
//! frame goes to the inference worker without boxes, which then finds the people itself:
//! nothing is lost, it is only slower.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

use futures_channel::oneshot;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use web_sys::{ErrorEvent, MessageEvent, Worker};

use super::controller::{post, WORKER_SCRIPT};
use crate::protocol::{FoundBoxes, FromWorker, ToWorker};

#[derive(Default)]
struct State {
    listening: bool,
    /// Gone for good (failed to start, or stopped): no frame is handed to it any more.
    dead: bool,
    next_ticket: u32,
    /// Frames handed over, not yet answered.
    waiting: BTreeMap<u32, oneshot::Sender<Option<FoundBoxes>>>,
}

/// The people-finding worker.
pub struct Finder {
    worker: Worker,
    state: Rc<RefCell<State>>,
    _onmessage: Closure<dyn FnMut(MessageEvent)>,
    _onerror: Closure<dyn FnMut(ErrorEvent)>,
}

impl Finder {
    /// Starts the worker (it loads in the background); `None` when the browser refuses.
    pub fn start() -> Option<Rc<Self>> {
        let worker = Worker::new(WORKER_SCRIPT).ok()?;
        let state = Rc::new(RefCell::new(State::default()));
        let onmessage = {
            let state = state.clone();
            Closure::<dyn FnMut(MessageEvent)>::new(move |event: MessageEvent| {
                let message = serde_wasm_bindgen::from_value::<FromWorker>(event.data());
                let mut state = state.borrow_mut();
                match message {
                    Ok(FromWorker::Listening) => state.listening = true,
                    Ok(FromWorker::PeopleFound { ticket, found }) => {
                        if let Some(tx) = state.waiting.remove(&ticket) {
                            let _ = tx.send(Some(found));
                        }
                    }
                    Ok(FromWorker::FindFailed { ticket, message }) => {
                        web_sys::console::warn_1(
                            &format!(
                                "the people finder: {message}; the inference worker finds them"
                            )
                            .into(),
                        );
                        if let Some(tx) = state.waiting.remove(&ticket) {
                            let _ = tx.send(None);
                        }
                    }
                    // A panic, or a message it should not send: it is no longer trusted.
                    _ => stop(&mut state),
                }
            })
        };
        let onerror = {
            let state = state.clone();
            Closure::<dyn FnMut(ErrorEvent)>::new(move |event: ErrorEvent| {
                event.prevent_default();
                web_sys::console::warn_1(
                    &format!("the people finder failed: {}", event.message()).into(),
                );
                stop(&mut state.borrow_mut());
            })
        };
        worker.set_onmessage(Some(onmessage.as_ref().unchecked_ref()));
        worker.set_onerror(Some(onerror.as_ref().unchecked_ref()));
        Some(Rc::new(Self {
            worker,
            state,
            _onmessage: onmessage,
            _onerror: onerror,
        }))
    }

    /// Whether it died (a new one may be started).
    pub fn is_dead(&self) -> bool {
        self.state.borrow().dead
    }

    /// Hands a `width` x `height` RGBA frame over; the receiver gets its people, or `None`
    /// when the finder failed on it or stopped. `None` at once when the finder is not
    /// listening (yet, or any more): the caller finds the people elsewhere.
    pub fn find(
        &self,
        width: u32,
        height: u32,
        rgba: &[u8],
    ) -> Option<oneshot::Receiver<Option<FoundBoxes>>> {
        let mut state = self.state.borrow_mut();
        if !state.listening || state.dead {
            return None;
        }
        let ticket = state.next_ticket;
        state.next_ticket = state.next_ticket.wrapping_add(1);
        let message = ToWorker::FindPeople {
            ticket,
            width,
            height,
            rgba: rgba.to_vec(),
        };
        if !post(&self.worker, &message) {
            return None;
        }
        let (tx, rx) = oneshot::channel();
        state.waiting.insert(ticket, tx);
        Some(rx)
    }
}

/// Stops handing frames over; the frames waiting get `None` (found elsewhere).
fn stop(state: &mut State) {
    state.dead = true;
    state.listening = false;
    for (_, tx) in std::mem::take(&mut state.waiting) {
        let _ = tx.send(None);
    }
}

impl Drop for Finder {
    fn drop(&mut self) {
        self.worker.terminate();
    }
}
