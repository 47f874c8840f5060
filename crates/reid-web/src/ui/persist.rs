//! Keeping the gallery on this device, when the user turns it on: each person is one record
//! of the IndexedDB database [`DB`], written in a transaction of its own, so that a tab closed
//! during a write loses only the record being written. A record is a one-person gallery file
//! ([`crate::gallery_file`], checked by its SHA-256 when read back); the database exists only
//! while keeping is on, and turning it off or "Forget everything" deletes it.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;

use js_sys::{Array, Function, Promise, Reflect, Uint8Array};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::{spawn_local, JsFuture};
use web_sys::{IdbDatabase, IdbFactory, IdbRequest, IdbTransaction, IdbTransactionMode};
use yew::Callback;

use super::controller::Controller;
use super::gallery_io::picture;
use super::state::{Item, ItemStatus};
use crate::gallery_file::{self as format, Entry, Gallery, ModelStamp};
use crate::js::js_error;

/// The database's name (the browser keeps it per origin).
pub const DB: &str = "reid-gallery";
const STORE: &str = "people";

/// What the page says about keeping.
#[derive(Debug, Clone, PartialEq)]
pub enum KeepStatus {
    Off,
    /// Reading the kept gallery back.
    Restoring,
    /// On: this many people are written.
    Kept(usize),
    Failed(String),
}

/// A person written to the database: their record's key and the embedding written (`None`
/// for a person read back and not seen since; `stale` when read back under another model).
/// A record read back is `seen` once the gallery shows its person: until then a gallery
/// without them is one from before they were added back, not one they left.
struct Record {
    key: String,
    embedding: Option<Rc<Vec<f32>>>,
    stale: bool,
    seen: bool,
}

#[derive(Default)]
struct Inner {
    on: bool,
    db: Option<IdbDatabase>,
    /// Bumped when keeping stops: a write loop of an older generation ends.
    generation: u32,
    /// Prefix of this page's new keys (the time it loaded), so that keys sort in the order
    /// people were added, across visits.
    session: String,
    next: u32,
    records: BTreeMap<u32, Record>,
    /// A write loop runs.
    busy: bool,
    /// The gallery to write next.
    latest: Option<(Rc<Vec<Item>>, ModelStamp)>,
}

/// The page's handle on the kept gallery.
pub struct Keeper {
    status: Callback<KeepStatus>,
    inner: RefCell<Inner>,
}

impl Keeper {
    pub fn new(status: Callback<KeepStatus>) -> Rc<Self> {
        let session = format!("{:013}", js_sys::Date::now() as u64);
        Rc::new(Self {
            status,
            inner: RefCell::new(Inner {
                session,
                ..Inner::default()
            }),
        })
    }

    /// Once the model runs: if a gallery was kept on a former visit, keeping is on and its
    /// people are added back (through the controller, as from a gallery file).
    pub fn restore(self: &Rc<Self>, controller: Rc<Controller>, running: ModelStamp) {
        let this = self.clone();
        let generation = self.inner.borrow().generation;
        spawn_local(async move {
            match exists().await {
                Ok(false) => return,
                Ok(true) => {}
                Err(message) => {
                    this.status.emit(KeepStatus::Failed(message));
                    return;
                }
            }
            if this.inner.borrow().generation != generation {
                return;
            }
            this.status.emit(KeepStatus::Restoring);
            let restored = async {
                let db = open().await?;
                let records = read_all(&db).await?;
                Ok::<_, String>((db, records))
            };
            let (db, records) = match restored.await {
                Ok(r) => r,
                Err(message) => {
                    this.status.emit(KeepStatus::Failed(format!(
                        "the gallery kept on this device could not be read: {message}"
                    )));
                    return;
                }
            };
            // Records of one model together, in the order they were added; a damaged record is
            // left out and said so, the others come back.
            let mut groups: Vec<(ModelStamp, Vec<(String, Entry)>)> = Vec::new();
            let mut damaged = 0;
            for (key, bytes) in records {
                match format::read(&bytes) {
                    Ok(format::Read::Plain(g)) if g.entries.len() == 1 => {
                        let entry = g.entries.into_iter().next().unwrap();
                        match groups.iter_mut().find(|(m, _)| *m == g.model) {
                            Some((_, list)) => list.push((key, entry)),
                            None => groups.push((g.model, vec![(key, entry)])),
                        }
                    }
                    _ => damaged += 1,
                }
            }
            let mut inner = this.inner.borrow_mut();
            if inner.generation != generation {
                // Forgotten while being read: the database is being deleted, nothing comes back.
                db.close();
                return;
            }
            inner.on = true;
            inner.db = Some(db);
            let mut added = Vec::new();
            for (model, list) in groups {
                let stale = model != running;
                let (keys, entries): (Vec<String>, Vec<Entry>) = list.into_iter().unzip();
                added.push((
                    keys,
                    stale,
                    Gallery {
                        model,
                        heads_blurred: false,
                        entries,
                    },
                ));
            }
            drop(inner);
            let mut count = 0;
            for (keys, stale, gallery) in added {
                let ids = controller.add_gallery(
                    gallery,
                    Some(&running),
                    "the gallery kept on this device",
                );
                let mut inner = this.inner.borrow_mut();
                for (id, key) in ids.into_iter().zip(keys) {
                    inner.records.insert(
                        id,
                        Record {
                            key,
                            embedding: None,
                            stale,
                            seen: false,
                        },
                    );
                    count += 1;
                }
            }
            this.status.emit(if damaged == 0 {
                KeepStatus::Kept(count)
            } else {
                KeepStatus::Failed(format!(
                    "{damaged} kept {} damaged and left out; {count} came back",
                    if damaged == 1 {
                        "person was"
                    } else {
                        "people were"
                    }
                ))
            });
            this.write_latest();
        });
    }

    /// The gallery changed: when keeping is on, its new and re-embedded people are written and
    /// those gone are deleted.
    pub fn sync(self: &Rc<Self>, items: Rc<Vec<Item>>, running: ModelStamp) {
        self.inner.borrow_mut().latest = Some((items, running));
        self.write_latest();
    }

    /// Turns keeping on (the database is made, the gallery written) or off (the database
    /// deleted).
    pub fn set(self: &Rc<Self>, on: bool) {
        if !on {
            self.forget();
            return;
        }
        if self.inner.borrow().on {
            return;
        }
        let this = self.clone();
        spawn_local(async move {
            match open().await {
                Ok(db) => {
                    {
                        let mut inner = this.inner.borrow_mut();
                        inner.on = true;
                        inner.db = Some(db);
                    }
                    this.status.emit(KeepStatus::Kept(0));
                    this.write_latest();
                }
                Err(message) => this.status.emit(KeepStatus::Failed(format!(
                    "this browser does not let the page keep the gallery: {message}"
                ))),
            }
        });
    }

    /// Stops keeping and deletes the database with everything in it.
    pub fn forget(self: &Rc<Self>) {
        let was_on = {
            let mut inner = self.inner.borrow_mut();
            inner.generation += 1;
            inner.records.clear();
            inner.busy = false;
            if let Some(db) = inner.db.take() {
                db.close();
            }
            std::mem::replace(&mut inner.on, false)
        };
        let status = self.status.clone();
        spawn_local(async move {
            // Deleted even when off: a database left by a failed restore goes too.
            match delete().await {
                Ok(()) => status.emit(KeepStatus::Off),
                Err(message) if was_on => status.emit(KeepStatus::Failed(format!(
                    "the kept gallery could not be deleted: {message}"
                ))),
                Err(_) => status.emit(KeepStatus::Off),
            }
        });
    }

    /// Starts the write loop unless it runs (it picks up the latest gallery when done).
    fn write_latest(self: &Rc<Self>) {
        {
            let mut inner = self.inner.borrow_mut();
            if !inner.on || inner.busy || inner.latest.is_none() || inner.db.is_none() {
                return;
            }
            inner.busy = true;
        }
        let this = self.clone();
        spawn_local(async move {
            let generation = this.inner.borrow().generation;
            loop {
                let latest = {
                    let mut inner = this.inner.borrow_mut();
                    if inner.generation != generation {
                        return;
                    }
                    match inner.latest.take() {
                        Some(l) => l,
                        None => {
                            inner.busy = false;
                            return;
                        }
                    }
                };
                match this.write(latest, generation).await {
                    Ok(Some(count)) => this.status.emit(KeepStatus::Kept(count)),
                    Ok(None) => return,
                    Err(message) => {
                        let mut inner = this.inner.borrow_mut();
                        if inner.generation == generation {
                            inner.busy = false;
                        }
                        drop(inner);
                        this.status.emit(KeepStatus::Failed(format!(
                            "the gallery could not be kept: {message}"
                        )));
                        return;
                    }
                }
            }
        });
    }

    /// Writes one gallery: the count of people kept, or `None` if keeping stopped meanwhile.
    async fn write(
        &self,
        (items, running): (Rc<Vec<Item>>, ModelStamp),
        generation: u32,
    ) -> Result<Option<usize>, String> {
        let people: Vec<&Item> = items
            .iter()
            .filter(|i| matches!(i.status, ItemStatus::Done { .. }))
            .collect();
        // A person waiting to be embedded (again) keeps their record; one no longer in the
        // gallery loses it.
        let present: BTreeSet<u32> = items.iter().map(|i| i.id).collect();
        let gone: Vec<(u32, String)> = {
            let mut inner = self.inner.borrow_mut();
            for (id, r) in inner.records.iter_mut() {
                r.seen |= present.contains(id);
            }
            inner
                .records
                .iter()
                .filter(|(id, r)| r.seen && !present.contains(id))
                .map(|(id, r)| (*id, r.key.clone()))
                .collect()
        };
        for (id, key) in gone {
            let Some(db) = self.db(generation) else {
                return Ok(None);
            };
            put(&db, &key, None).await?;
            self.inner.borrow_mut().records.remove(&id);
        }
        for item in people {
            let ItemStatus::Done { embedding, .. } = &item.status else {
                continue;
            };
            let key = {
                let mut inner = self.inner.borrow_mut();
                match inner.records.get_mut(&item.id) {
                    Some(r) if r.embedding.is_none() && !r.stale => {
                        // Read back as it is in the database.
                        r.embedding = Some(embedding.clone());
                        continue;
                    }
                    Some(r)
                        if r.embedding
                            .as_ref()
                            .is_some_and(|e| Rc::ptr_eq(e, embedding)) =>
                    {
                        continue;
                    }
                    Some(r) => r.key.clone(),
                    None => {
                        inner.next += 1;
                        format!("{}-{:06}", inner.session, inner.next)
                    }
                }
            };
            let picture = picture(&item.url, item.crop.as_ref(), false)
                .await
                .map_err(|e| format!("the picture of {}: {e}", item.name))?;
            let record = format::write_plain(&Gallery {
                model: running.clone(),
                heads_blurred: false,
                entries: vec![Entry {
                    name: item.name.clone(),
                    frames: item.frames,
                    seen: item.seen.clone(),
                    embedding: embedding.to_vec(),
                    picture_type: "image/jpeg".into(),
                    picture,
                }],
            });
            let Some(db) = self.db(generation) else {
                return Ok(None);
            };
            put(&db, &key, Some(&record)).await?;
            self.inner.borrow_mut().records.insert(
                item.id,
                Record {
                    key,
                    embedding: Some(embedding.clone()),
                    stale: false,
                    seen: true,
                },
            );
        }
        let inner = self.inner.borrow();
        Ok((inner.generation == generation).then_some(inner.records.len()))
    }

    /// The database, while keeping is on in `generation`.
    fn db(&self, generation: u32) -> Option<IdbDatabase> {
        let inner = self.inner.borrow();
        (inner.generation == generation)
            .then(|| inner.db.clone())
            .flatten()
    }
}

fn factory() -> Result<IdbFactory, String> {
    web_sys::window()
        .ok_or("no window")?
        .indexed_db()
        .map_err(js_error)?
        .ok_or_else(|| "this browser offers no IndexedDB here (a private window?)".into())
}

/// A promise settled by `target`'s `ok` event (with `value()`) or its failure events.
async fn settled(
    target: &web_sys::EventTarget,
    ok: &str,
    failures: &[&str],
    value: impl FnOnce() -> JsValue + 'static,
    error: impl Fn() -> JsValue + 'static,
) -> Result<JsValue, String> {
    let error = Rc::new(error);
    let mut value = Some(value);
    let promise = Promise::new(&mut |resolve: Function, reject: Function| {
        let mut value = value.take();
        let on_ok = Closure::<dyn FnMut()>::new(move || {
            if let Some(value) = value.take() {
                let _ = resolve.call1(&JsValue::NULL, &value());
            }
        });
        let _ = target.add_event_listener_with_callback(ok, on_ok.as_ref().unchecked_ref());
        on_ok.forget();
        for name in failures {
            let (reject, error) = (reject.clone(), error.clone());
            let on_fail = Closure::<dyn FnMut()>::new(move || {
                let _ = reject.call1(&JsValue::NULL, &error());
            });
            let _ = target.add_event_listener_with_callback(name, on_fail.as_ref().unchecked_ref());
            on_fail.forget();
        }
    });
    JsFuture::from(promise).await.map_err(js_error)
}

/// The result of `request`, once it succeeded.
async fn result(request: &IdbRequest) -> Result<JsValue, String> {
    let (ok, failed) = (request.clone(), request.clone());
    settled(
        request,
        "success",
        &["error"],
        move || ok.result().unwrap_or(JsValue::UNDEFINED),
        move || match failed.error() {
            Ok(Some(e)) => JsValue::from(e.message()),
            _ => JsValue::from("the request failed"),
        },
    )
    .await
}

/// Waits for `transaction` to be written (its `complete` event).
async fn committed(transaction: &IdbTransaction) -> Result<(), String> {
    let failed = transaction.clone();
    settled(
        transaction,
        "complete",
        &["error", "abort"],
        || JsValue::UNDEFINED,
        move || match failed.error() {
            Some(e) => JsValue::from(e.message()),
            None => JsValue::from("the write was aborted"),
        },
    )
    .await
    .map(|_| ())
}

/// Whether the database exists, without making it (`indexedDB.open` would).
async fn exists() -> Result<bool, String> {
    let factory = factory()?;
    let databases: Function = Reflect::get(&factory, &"databases".into())
        .map_err(js_error)?
        .dyn_into()
        .map_err(|_| "this browser cannot list its IndexedDB databases".to_string())?;
    let promise: Promise = databases
        .call0(&factory)
        .map_err(js_error)?
        .unchecked_into();
    let list = JsFuture::from(promise).await.map_err(js_error)?;
    Ok(Array::from(&list).iter().any(|d| {
        Reflect::get(&d, &"name".into())
            .ok()
            .and_then(|n| n.as_string())
            .as_deref()
            == Some(DB)
    }))
}

/// Opens the database, making it (with its store) if it does not exist.
async fn open() -> Result<IdbDatabase, String> {
    let request = factory()?.open_with_u32(DB, 1).map_err(js_error)?;
    let upgrading = request.clone();
    let on_upgrade = Closure::<dyn FnMut()>::new(move || {
        if let Ok(db) = upgrading.result() {
            let _ = db
                .unchecked_into::<IdbDatabase>()
                .create_object_store(STORE);
        }
    });
    request.set_onupgradeneeded(Some(on_upgrade.as_ref().unchecked_ref()));
    let db = result(&request).await;
    request.set_onupgradeneeded(None);
    drop(on_upgrade);
    Ok(db?.unchecked_into())
}

/// Every record, in key order.
async fn read_all(db: &IdbDatabase) -> Result<Vec<(String, Vec<u8>)>, String> {
    let transaction = db.transaction_with_str(STORE).map_err(js_error)?;
    let store = transaction.object_store(STORE).map_err(js_error)?;
    // Both asked at once (and awaited together): an answer is an event, missed by a listener
    // added after it.
    let (keys, values) = (
        store.get_all_keys().map_err(js_error)?,
        store.get_all().map_err(js_error)?,
    );
    let (keys, values) = futures_util::future::join(result(&keys), result(&values)).await;
    let (keys, values) = (keys?, values?);
    Ok(Array::from(&keys)
        .iter()
        .zip(Array::from(&values).iter())
        .map(|(k, v)| {
            (
                k.as_string().unwrap_or_default(),
                Uint8Array::new(&v).to_vec(),
            )
        })
        .collect())
}

/// Writes (`Some`) or deletes (`None`) the record `key`, in a transaction of its own.
async fn put(db: &IdbDatabase, key: &str, value: Option<&[u8]>) -> Result<(), String> {
    let transaction = db
        .transaction_with_str_and_mode(STORE, IdbTransactionMode::Readwrite)
        .map_err(js_error)?;
    let store = transaction.object_store(STORE).map_err(js_error)?;
    match value {
        Some(bytes) => store.put_with_key(&Uint8Array::from(bytes), &key.into()),
        None => store.delete(&key.into()),
    }
    .map_err(js_error)?;
    committed(&transaction).await
}

/// Deletes the database.
async fn delete() -> Result<(), String> {
    let request = factory()?.delete_database(DB).map_err(js_error)?;
    result(&request).await.map(|_| ())
}
