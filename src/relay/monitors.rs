//! The live-subscription index of a req-monitor thread (strfry's `ActiveMonitors`, reference
//! §3.11): which open subscriptions does a newly stored event go to?
//!
//! Each filter is indexed under **one** inverted map, chosen in strfry's priority order:
//! `ids` → by id; else `authors` → by pubkey; else tags → by `name‖value` (the tag condition
//! with the fewest values); else `kinds` → by kind; else the "others" set, ordered by `since`
//! so an event only visits the others whose `since` it passes. A filter that can never
//! match (`never`) is not indexed at all (its subscription still exists and counts).
//!
//! An event is looked up by its id, its pubkey, each packed tag, its kind and the others;
//! every candidate filter is then checked once.
//!
//! **Time.** A filter whose time range an event falls outside of is taken out of that index
//! when the call ends: past its `until` it moves to `past` (ordered by `until`, visited only
//! by events dated at or before it: backdated ones), before its `since` to `future` (ordered
//! by `since`, visited by events dated at or after it, which move it back to its index).
//! New events are dated about now, so filters that cannot match them any more — paging REQs
//! never closed, or a flood of `{"until":1}` — cost one visit each instead of one per event.
//! Which index holds a filter only changes how it is found: every filter found is checked
//! in full, so results are exact whatever the events' dates. Most live filters have no condition besides
//! their indexed one and a time range (`{authors}`, `{#p}`, `{kinds}`, `{since}`), and for
//! those reaching them through the index already settles everything but the time range, so
//! they are checked from a small dense slot without reading the `Filter`; the others run the
//! full [`Filter::matches`]. Filters must be compiled as `Filter::from_json` does (sorted,
//! unique values), which `Filter::matches` relies on too.
//!
//! Generation counters stored in each filter and subscription make sure a filter is
//! evaluated at most once per event (a tag filter can be reached through several of the
//! event's tags) and a subscription is reported at most once (the first matching filter
//! settles it; its other filters are skipped), without any allocation per event.
//! ([`Monitors::matches`] still clones a `SubId`, a `String`, per recipient: with thousands
//! of recipients that is most of its cost, which [`Monitors::for_each_match`] avoids.)
//!
//! The maps use std's `HashMap` (SipHash, randomly keyed) on purpose: their keys are chosen
//! by clients, and a fast unkeyed hash would let one REQ with crafted authors degrade every
//! lookup.
//!
//! Pure data structure: no threads, no I/O. The counters are `Cell`s, so [`Monitors`] is
//! `Send` but not `Sync`: each req-monitor thread owns its own.

use std::borrow::Borrow;
use std::cell::Cell;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::hash::Hash;

use crate::nostr::filter::TagFilter;
use crate::nostr::{EventView, Filter, SubId};

/// A connection, as numbered by the relay.
pub type ConnId = u64;

/// Index of a filter in `Monitors::filters`.
type FilterIx = u32;
/// Index of a subscription in `Monitors::subs`.
type SubIx = u32;

/// Posting lists: key → filters indexed under it (unordered; a filter appears once per
/// occurrence of the key among its indexed values).
type Postings<K> = HashMap<K, Vec<FilterIx>>;

/// Longest tag lookup key: name (1 byte) ‖ value (a packed value is at most 255 bytes).
const TAG_KEY_MAX: usize = 1 + 255;

/// A small, dense slot: the fields every candidate reads. The filter itself is boxed, and
/// only read when the index key alone does not settle the match.
struct FilterSlot {
    /// Generation of the last `matches` call that evaluated this filter.
    checked: Cell<u64>,
    since: u64,
    until: u64,
    sub: SubIx,
    /// The filter has no condition besides its indexed one and its time range, so an event
    /// reached through the index matches iff `since <= created_at <= until`.
    time_only: bool,
    /// Which index holds it now.
    place: Place,
    filter: Box<Filter>,
}

/// Where a filter is currently found (see the module docs on time).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Place {
    /// Its posting lists (or the others set).
    Indexed,
    /// `past`, keyed by `until`.
    Past,
    /// `future`, keyed by `since`.
    Future,
}

struct SubSlot {
    conn: ConnId,
    sub_id: SubId,
    /// Its indexed filters (`never` filters are dropped on subscribe).
    filters: Vec<FilterIx>,
    /// Generation of the last `matches` call that reported this subscription.
    reported: Cell<u64>,
}

/// Where a filter is indexed.
enum IndexedBy<'f> {
    Ids(&'f [[u8; 32]]),
    Authors(&'f [[u8; 32]]),
    Tag(&'f TagFilter),
    Kinds(&'f [u64]),
    Others,
}

fn indexed_by(f: &Filter) -> IndexedBy<'_> {
    if let Some(ids) = &f.ids {
        IndexedBy::Ids(ids)
    } else if let Some(authors) = &f.authors {
        IndexedBy::Authors(authors)
    } else if let Some(tag) = f.tags.iter().min_by_key(|t| t.values.len()) {
        // `min_by_key` keeps the first of equals: ties go to the lowest tag name.
        IndexedBy::Tag(tag)
    } else if let Some(kinds) = &f.kinds {
        IndexedBy::Kinds(kinds)
    } else {
        IndexedBy::Others
    }
}

/// Does reaching `f` through its index key settle every condition except the time range?
/// (Reaching it means the event's id/pubkey/tag/kind is among the indexed values.)
fn time_only(f: &Filter) -> bool {
    if f.search.is_some() {
        return false;
    }
    match indexed_by(f) {
        IndexedBy::Ids(_) => f.authors.is_none() && f.kinds.is_none() && f.tags.is_empty(),
        IndexedBy::Authors(_) => f.kinds.is_none() && f.tags.is_empty(),
        IndexedBy::Tag(_) => f.kinds.is_none() && f.tags.len() == 1,
        IndexedBy::Kinds(_) | IndexedBy::Others => true,
    }
}

fn tag_key(name: u8, value: &[u8]) -> Box<[u8]> {
    let mut k = Vec::with_capacity(1 + value.len());
    k.push(name);
    k.extend_from_slice(value);
    k.into_boxed_slice()
}

fn post<K: Hash + Eq>(map: &mut Postings<K>, key: K, f: FilterIx) {
    map.entry(key).or_default().push(f);
}

fn unpost<K, Q>(map: &mut Postings<K>, key: &Q, f: FilterIx)
where
    K: Borrow<Q> + Hash + Eq,
    Q: Hash + Eq + ?Sized,
{
    if let Some(list) = map.get_mut(key) {
        if let Some(i) = list.iter().position(|&x| x == f) {
            list.swap_remove(i);
        }
        if list.is_empty() {
            map.remove(key);
        }
    }
}

/// One match call's state, passed down to each candidate check.
struct Visit<'a> {
    /// The event's created_at, read once (a record reads it from its flatbuffer).
    t: u64,
    gen: u64,
    moves: &'a mut Vec<(FilterIx, Place)>,
}

/// Up to this many filters leaving at once are removed one by one (a scan of each list
/// they are in); more are removed in one pass per list. Tests switch at 2, so the property
/// test drives both ways.
const FEW: usize = if cfg!(test) { 2 } else { 64 };

/// Removes filters from posting lists, given per key: a few by position each (a short
/// scan), many in one pass over the list.
fn unpost_all<K: Hash + Eq>(map: &mut Postings<K>, gone: HashMap<K, Vec<FilterIx>>) {
    for (k, fs) in gone {
        let Some(list) = map.get_mut(&k) else {
            continue;
        };
        if fs.len() < FEW {
            for f in fs {
                if let Some(i) = list.iter().position(|&x| x == f) {
                    list.swap_remove(i);
                }
            }
        } else {
            let fs: HashSet<FilterIx> = fs.into_iter().collect();
            list.retain(|f| !fs.contains(f));
        }
        if list.is_empty() {
            map.remove(&k);
        }
    }
}

/// All live subscriptions of a set of connections, indexed for matching new events.
#[derive(Default)]
pub struct Monitors {
    filters: Vec<Option<FilterSlot>>,
    free_filters: Vec<FilterIx>,
    subs: Vec<Option<SubSlot>>,
    free_subs: Vec<SubIx>,
    conns: HashMap<ConnId, HashMap<SubId, SubIx>>,
    n_subs: usize,

    ids: Postings<[u8; 32]>,
    authors: Postings<[u8; 32]>,
    /// Keyed by `name‖value` (`e`/`p` values as 32 raw bytes, as in packed tags).
    tags: Postings<Box<[u8]>>,
    kinds: Postings<u64>,
    /// `(since, filter)`.
    others: BTreeSet<(u64, FilterIx)>,
    /// `(until, filter)`: filters an event dated after their `until` has passed.
    past: BTreeSet<(u64, FilterIx)>,
    /// `(since, filter)`: filters an event dated before their `since` has reached.
    future: BTreeSet<(u64, FilterIx)>,
    /// Moves decided during a match call, applied when it ends (reused buffer).
    moves: Vec<(FilterIx, Place)>,
    /// The relay's clock as last told (`set_clock`); 0 = not told.
    clock: u64,

    /// Bumped by every `matches` call (starts at 0, so fresh slots are never "seen").
    generation: Cell<u64>,
}

impl Monitors {
    pub fn new() -> Self {
        Self::default()
    }

    /// Installs (or replaces: same conn+sub_id replaces silently) a subscription.
    pub fn subscribe(&mut self, conn: ConnId, sub_id: SubId, filters: Vec<Filter>) {
        self.unsubscribe(conn, &sub_id);
        let sub = self.alloc_sub(SubSlot {
            conn,
            sub_id: sub_id.clone(),
            filters: Vec::new(),
            reported: Cell::new(0),
        });
        let mut ixs = Vec::with_capacity(filters.len());
        for filter in filters.into_iter().filter(|f| !f.never) {
            let f = self.alloc_filter(FilterSlot {
                checked: Cell::new(0),
                since: filter.since,
                until: filter.until,
                sub,
                time_only: time_only(&filter),
                place: self.first_place(&filter),
                filter: Box::new(filter),
            });
            self.index(f);
            ixs.push(f);
        }
        if let Some(Some(s)) = self.subs.get_mut(sub as usize) {
            s.filters = ixs;
        }
        self.conns.entry(conn).or_default().insert(sub_id, sub);
        self.n_subs += 1;
    }

    /// Removes a subscription; false if there was none.
    pub fn unsubscribe(&mut self, conn: ConnId, sub_id: &SubId) -> bool {
        let Some(subs) = self.conns.get_mut(&conn) else {
            return false;
        };
        let Some(sub) = subs.remove(sub_id) else {
            return false;
        };
        if subs.is_empty() {
            self.conns.remove(&conn);
        }
        self.drop_sub(sub);
        true
    }

    /// Removes every subscription of a connection.
    pub fn close_conn(&mut self, conn: ConnId) {
        if let Some(subs) = self.conns.remove(&conn) {
            let mut filters = Vec::new();
            for sub in subs.into_values() {
                filters.extend(self.take_sub(sub));
            }
            self.free_filters_of(filters);
        }
    }

    /// Tells the index the time (the relay's clock), so new filters whose range has
    /// already passed, or starts later, go straight to `past`/`future` instead of waiting
    /// for an event to move them (1.2M `{"until":1}` filters cost their first event ~0.5 s).
    /// Only a placement: results do not depend on it.
    pub fn set_clock(&mut self, now: u64) {
        self.clock = now;
    }

    fn first_place(&self, f: &Filter) -> Place {
        if self.clock == 0 {
            Place::Indexed
        } else if f.until < self.clock {
            Place::Past
        } else if f.since > self.clock {
            Place::Future
        } else {
            Place::Indexed
        }
    }

    /// Subscriptions of one connection.
    pub fn sub_count(&self, conn: ConnId) -> usize {
        self.conns.get(&conn).map_or(0, HashMap::len)
    }

    /// Subscriptions in total.
    pub fn len(&self) -> usize {
        self.n_subs
    }

    pub fn is_empty(&self) -> bool {
        self.n_subs == 0
    }

    /// Every (conn, sub_id) with at least one filter matching `ev`, each at most once,
    /// appended to `out` (cleared first), in no particular order.
    pub fn matches<E: EventView + ?Sized>(&mut self, ev: &E, out: &mut Vec<(ConnId, SubId)>) {
        out.clear();
        self.for_each_match(ev, |conn, sub_id| out.push((conn, sub_id.clone())));
    }

    /// Like [`Monitors::matches`], but hands each recipient to `f` instead of cloning its
    /// sub id (which costs an allocation per recipient): the caller can write the sub id
    /// straight into the outgoing message.
    ///
    /// Takes `&mut self` because filters the event's date shows to be out of range move
    /// between indexes when the call ends.
    pub fn for_each_match<E, F>(&mut self, ev: &E, mut f: F)
    where
        E: EventView + ?Sized,
        F: FnMut(ConnId, &SubId),
    {
        let mut moves = std::mem::take(&mut self.moves);
        self.find(ev, &mut f, &mut moves);
        if !moves.is_empty() {
            self.relocate(&moves);
        }
        moves.clear();
        self.moves = moves;
    }

    fn find<E, F>(&self, ev: &E, f: &mut F, moves: &mut Vec<(FilterIx, Place)>)
    where
        E: EventView + ?Sized,
        F: FnMut(ConnId, &SubId),
    {
        let gen = self.generation.get() + 1;
        self.generation.set(gen);
        let t = ev.created_at();
        let c = &mut Visit { t, gen, moves };

        if !self.ids.is_empty() {
            if let Some(list) = self.ids.get(ev.id()) {
                self.visit(list, ev, f, c);
            }
        }
        if let Some(list) = self.authors.get(ev.pubkey()) {
            self.visit(list, ev, f, c);
        }
        if !self.tags.is_empty() {
            let mut key = [0u8; TAG_KEY_MAX];
            for (name, value) in ev.packed_tags() {
                // A packed value's length is one byte, so it always fits.
                let Some(dst) = key.get_mut(1..1 + value.len()) else {
                    continue;
                };
                dst.copy_from_slice(value);
                key[0] = name;
                if let Some(list) = self.tags.get(&key[..1 + value.len()]) {
                    self.visit(list, ev, f, c);
                }
            }
        }
        if let Some(list) = self.kinds.get(&ev.kind()) {
            self.visit(list, ev, f, c);
        }
        if !self.others.is_empty() {
            let t = ev.created_at();
            for &(_, ix) in self.others.range(..=(t, FilterIx::MAX)) {
                self.check(ix, ev, f, c);
            }
        }
        // Only backdated events reach past filters, and only events dated after a future
        // filter's since reach it (which then goes back to its index).
        if !self.past.is_empty() {
            for &(_, ix) in self.past.range((ev.created_at(), 0)..) {
                self.check(ix, ev, f, c);
            }
        }
        if !self.future.is_empty() {
            for &(_, ix) in self.future.range(..=(ev.created_at(), FilterIx::MAX)) {
                self.check(ix, ev, f, c);
            }
        }
    }

    fn visit<E, F>(&self, list: &[FilterIx], ev: &E, f: &mut F, c: &mut Visit<'_>)
    where
        E: EventView + ?Sized,
        F: FnMut(ConnId, &SubId),
    {
        for &ix in list {
            self.check(ix, ev, f, c);
        }
    }

    /// Evaluates one candidate filter unless this call already did, or already reported
    /// its subscription. A filter found in its index whose time range the event misses is
    /// queued to move to `past` or `future`.
    #[inline]
    fn check<E, F>(&self, ix: FilterIx, ev: &E, f: &mut F, c: &mut Visit<'_>)
    where
        E: EventView + ?Sized,
        F: FnMut(ConnId, &SubId),
    {
        let Some(Some(slot)) = self.filters.get(ix as usize) else {
            return;
        };
        if slot.checked.get() == c.gen {
            return;
        }
        slot.checked.set(c.gen);
        let t = c.t;
        if t < slot.since || t > slot.until {
            match slot.place {
                Place::Indexed if t > slot.until => c.moves.push((ix, Place::Past)),
                Place::Indexed => c.moves.push((ix, Place::Future)),
                // Reached from `future`, so past its since: it is past its until too.
                Place::Future => c.moves.push((ix, Place::Past)),
                Place::Past => {}
            }
            return;
        }
        if slot.place == Place::Future {
            c.moves.push((ix, Place::Indexed));
        }
        let Some(Some(sub)) = self.subs.get(slot.sub as usize) else {
            return;
        };
        if sub.reported.get() == c.gen {
            return;
        }
        // In range: reaching a time-only filter through its index settles the rest (a
        // filter found in `past`/`future` was not reached through its index).
        // `search` is checked against the event's indexed terms (read once per event).
        let matched =
            (slot.time_only && slot.place == Place::Indexed) || slot.filter.matches_with_search(ev);
        if matched {
            sub.reported.set(c.gen);
            f(sub.conn, &sub.sub_id);
        }
    }

    /// Moves filters to other indexes (a move to where a filter already is, or of a filter
    /// that is gone, does nothing).
    fn relocate(&mut self, moves: &[(FilterIx, Place)]) {
        let moving: Vec<FilterIx> = moves
            .iter()
            .filter(|&&(ix, to)| {
                matches!(self.filters.get(ix as usize), Some(Some(s)) if s.place != to)
            })
            .map(|&(ix, _)| ix)
            .collect();
        self.unindex_all(&moving);
        for &(ix, to) in moves {
            // `unindex_all` left `place` as it was: this still picks exactly `moving`.
            if let Some(Some(slot)) = self.filters.get_mut(ix as usize) {
                if slot.place != to {
                    slot.place = to;
                    self.index(ix);
                }
            }
        }
    }

    fn alloc_sub(&mut self, s: SubSlot) -> SubIx {
        if let Some(ix) = self.free_subs.pop() {
            self.subs[ix as usize] = Some(s);
            ix
        } else {
            self.subs.push(Some(s));
            (self.subs.len() - 1) as SubIx
        }
    }

    fn alloc_filter(&mut self, f: FilterSlot) -> FilterIx {
        if let Some(ix) = self.free_filters.pop() {
            self.filters[ix as usize] = Some(f);
            ix
        } else {
            self.filters.push(Some(f));
            (self.filters.len() - 1) as FilterIx
        }
    }

    /// Frees a subscription slot and its filters (already removed from `conns`).
    fn drop_sub(&mut self, sub: SubIx) {
        let filters = self.take_sub(sub);
        self.free_filters_of(filters);
    }

    /// Frees a subscription slot; its filters are still to be freed.
    fn take_sub(&mut self, sub: SubIx) -> Vec<FilterIx> {
        let Some(s) = self.subs.get_mut(sub as usize).and_then(Option::take) else {
            return Vec::new();
        };
        self.free_subs.push(sub);
        self.n_subs -= 1;
        s.filters
    }

    fn free_filters_of(&mut self, filters: Vec<FilterIx>) {
        self.unindex_all(&filters);
        for f in filters {
            if let Some(slot) = self.filters.get_mut(f as usize) {
                *slot = None;
                self.free_filters.push(f);
            }
        }
    }

    /// Takes filters out of wherever they are. Each posting list they are in is filtered
    /// once, so removing many filters that share keys (a connection's 40k filters on one
    /// tag, or a flood of stale filters moving out) costs the lists' lengths, not their
    /// product.
    fn unindex_all(&mut self, ixs: &[FilterIx]) {
        if ixs.len() < FEW {
            ixs.iter().for_each(|&f| self.unindex(f));
            return;
        }
        let mut ids: HashMap<[u8; 32], Vec<FilterIx>> = HashMap::new();
        let mut authors: HashMap<[u8; 32], Vec<FilterIx>> = HashMap::new();
        let mut tags: HashMap<Box<[u8]>, Vec<FilterIx>> = HashMap::new();
        let mut kinds: HashMap<u64, Vec<FilterIx>> = HashMap::new();
        for &f in ixs {
            let Some(Some(slot)) = self.filters.get(f as usize) else {
                continue;
            };
            match slot.place {
                Place::Past => {
                    self.past.remove(&(slot.until, f));
                }
                Place::Future => {
                    self.future.remove(&(slot.since, f));
                }
                Place::Indexed => match indexed_by(&slot.filter) {
                    IndexedBy::Ids(v) => v.iter().for_each(|k| ids.entry(*k).or_default().push(f)),
                    IndexedBy::Authors(v) => v
                        .iter()
                        .for_each(|k| authors.entry(*k).or_default().push(f)),
                    IndexedBy::Tag(t) => t
                        .values
                        .iter()
                        .for_each(|v| tags.entry(tag_key(t.name, v)).or_default().push(f)),
                    IndexedBy::Kinds(k) => {
                        k.iter().for_each(|k| kinds.entry(*k).or_default().push(f))
                    }
                    IndexedBy::Others => {
                        self.others.remove(&(slot.filter.since, f));
                    }
                },
            }
        }
        unpost_all(&mut self.ids, ids);
        unpost_all(&mut self.authors, authors);
        unpost_all(&mut self.tags, tags);
        unpost_all(&mut self.kinds, kinds);
    }

    fn index(&mut self, f: FilterIx) {
        let Some(Some(slot)) = self.filters.get(f as usize) else {
            return;
        };
        match slot.place {
            Place::Past => {
                self.past.insert((slot.until, f));
                return;
            }
            Place::Future => {
                self.future.insert((slot.since, f));
                return;
            }
            Place::Indexed => {}
        }
        match indexed_by(&slot.filter) {
            IndexedBy::Ids(ids) => ids.iter().for_each(|k| post(&mut self.ids, *k, f)),
            IndexedBy::Authors(a) => a.iter().for_each(|k| post(&mut self.authors, *k, f)),
            IndexedBy::Tag(t) => t
                .values
                .iter()
                .for_each(|v| post(&mut self.tags, tag_key(t.name, v), f)),
            IndexedBy::Kinds(kinds) => kinds.iter().for_each(|k| post(&mut self.kinds, *k, f)),
            IndexedBy::Others => {
                self.others.insert((slot.filter.since, f));
            }
        }
    }

    fn unindex(&mut self, f: FilterIx) {
        let Some(Some(slot)) = self.filters.get(f as usize) else {
            return;
        };
        match slot.place {
            Place::Past => {
                self.past.remove(&(slot.until, f));
                return;
            }
            Place::Future => {
                self.future.remove(&(slot.since, f));
                return;
            }
            Place::Indexed => {}
        }
        match indexed_by(&slot.filter) {
            IndexedBy::Ids(ids) => ids.iter().for_each(|k| unpost(&mut self.ids, k, f)),
            IndexedBy::Authors(a) => a.iter().for_each(|k| unpost(&mut self.authors, k, f)),
            IndexedBy::Tag(t) => t
                .values
                .iter()
                .for_each(|v| unpost(&mut self.tags, &*tag_key(t.name, v), f)),
            IndexedBy::Kinds(kinds) => kinds.iter().for_each(|k| unpost(&mut self.kinds, k, f)),
            IndexedBy::Others => {
                self.others.remove(&(slot.filter.since, f));
            }
        }
    }

    /// Entries in all the inverted maps plus live slots (0 when everything is closed).
    #[cfg(test)]
    fn footprint(&self) -> usize {
        self.ids.len()
            + self.authors.len()
            + self.tags.len()
            + self.kinds.len()
            + self.others.len()
            + self.past.len()
            + self.future.len()
            + self.conns.len()
            + self.n_subs
            + self.filters.iter().filter(|f| f.is_some()).count()
            + self.subs.iter().filter(|s| s.is_some()).count()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};
    use std::sync::LazyLock;

    use proptest::prelude::*;

    use super::*;
    use crate::nostr::hex;
    use crate::nostr::sign::Keys;
    use crate::nostr::tags::Tags;
    use crate::nostr::{Event, Limits};

    const N_KEYS: u8 = 4;
    const T_VALUES: [&str; 4] = ["a", "b", "c", "z"];
    const KINDS: [u64; 4] = [0, 1, 7, 9];
    const SINCE: [u64; 4] = [0, 10, 20, 25];
    const UNTIL: [u64; 4] = [u64::MAX, 10, 20, 30];

    fn pubkey(i: usize) -> [u8; 32] {
        if i < N_KEYS as usize {
            POOL.pubkeys[i]
        } else {
            [0xfe; 32]
        }
    }

    /// `e` tag targets: a few fixed ids plus one no event uses.
    fn e_value(i: usize) -> [u8; 32] {
        [0xe0 + i as u8; 32]
    }

    struct Pool {
        pubkeys: Vec<[u8; 32]>,
        events: Vec<Event>,
    }

    /// 36 signed events over 4 keys, 3 kinds, 3 timestamps and a few (sometimes repeated)
    /// tags; signed once for all test cases.
    static POOL: LazyLock<Pool> = LazyLock::new(|| {
        let keys: Vec<Keys> = (1..=N_KEYS)
            .map(|n| Keys::from_secret([n; 32]).expect("key"))
            .collect();
        let pubkeys: Vec<[u8; 32]> = keys.iter().map(|k| k.pubkey).collect();
        let mut tag_pool: Vec<Vec<String>> = Vec::new();
        for i in 0..3 {
            tag_pool.push(vec!["e".into(), hex::encode(&e_value(i))]);
        }
        for pk in &pubkeys {
            tag_pool.push(vec!["p".into(), hex::encode(pk)]);
        }
        for t in &T_VALUES[..3] {
            tag_pool.push(vec!["t".into(), (*t).into()]);
        }
        tag_pool.push(vec!["tt".into(), "a".into()]); // not indexed
        let mut rng = 0x9e37_79b9_7f4a_7c15u64;
        let events = (0..36u64)
            .map(|i| {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                let n_tags = (rng % 6) as usize;
                let tags: Vec<Vec<String>> = (0..n_tags)
                    .map(|j| {
                        tag_pool[((rng >> (8 + 4 * j)) % tag_pool.len() as u64) as usize].clone()
                    })
                    .collect();
                keys[(i % 4) as usize]
                    .sign(
                        [10, 20, 30][(i / 4 % 3) as usize],
                        [0, 1, 7][(i % 3) as usize],
                        Tags::from_vecs(&tags),
                        "x",
                        &Limits::default(),
                    )
                    .expect("sign")
            })
            .collect();
        Pool { pubkeys, events }
    });

    /// A filter as indices into the small universe above.
    #[derive(Debug, Clone)]
    struct Spec {
        ids: Option<Vec<usize>>,
        authors: Option<Vec<usize>>,
        kinds: Option<Vec<usize>>,
        tags: Vec<(usize, Vec<usize>)>,
        since: usize,
        until: usize,
    }

    fn sorted<T: Ord>(mut v: Vec<T>) -> Vec<T> {
        v.sort_unstable();
        v.dedup();
        v
    }

    /// Compiles a spec the way `Filter::from_json` would (sorted, unique, `never`).
    fn build(s: &Spec) -> Filter {
        let mut f = Filter::all();
        f.ids = s.ids.as_ref().map(|v| {
            sorted(
                v.iter()
                    .map(|&i| POOL.events.get(i).map_or([0xff; 32], |e| e.id))
                    .collect(),
            )
        });
        f.authors = s
            .authors
            .as_ref()
            .map(|v| sorted(v.iter().map(|&i| pubkey(i)).collect()));
        f.kinds = s
            .kinds
            .as_ref()
            .map(|v| sorted(v.iter().map(|&i| KINDS[i]).collect()));
        for (name_ix, vals) in &s.tags {
            let name = [b'e', b'p', b't'][*name_ix];
            if f.tags.iter().any(|t| t.name == name) {
                continue;
            }
            let values = sorted(
                vals.iter()
                    .map(|&i| match name {
                        b'e' => e_value(i).to_vec(),
                        b'p' => pubkey(i).to_vec(),
                        _ => T_VALUES[i].as_bytes().to_vec(),
                    })
                    .collect(),
            );
            f.tags.push(TagFilter { name, values });
        }
        f.tags.sort_unstable_by_key(|t| t.name);
        f.since = SINCE[s.since];
        f.until = UNTIL[s.until];
        f.never = f.ids.as_ref().is_some_and(Vec::is_empty)
            || f.authors.as_ref().is_some_and(Vec::is_empty)
            || f.kinds.as_ref().is_some_and(Vec::is_empty)
            || f.tags.iter().any(|t| t.values.is_empty())
            || f.since > f.until;
        f
    }

    fn spec() -> impl Strategy<Value = Spec> {
        let arr = |n: usize| prop::option::weighted(0.3, prop::collection::vec(0..n, 0..3));
        (
            arr(6),
            arr(5),
            arr(4),
            prop::collection::vec((0..3usize, prop::collection::vec(0..4usize, 0..3)), 0..3),
            0..4usize,
            prop_oneof![3 => Just(0usize), 1 => 1..4usize],
        )
            .prop_map(|(ids, authors, kinds, tags, since, until)| Spec {
                ids,
                authors,
                kinds,
                tags,
                since,
                until,
            })
    }

    #[derive(Debug, Clone)]
    enum Op {
        Sub(ConnId, u8, Vec<Spec>),
        Unsub(ConnId, u8),
        Close(ConnId),
        Event(usize),
        Clock(u64),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (0..4u64, 0..4u8, prop::collection::vec(spec(), 0..4))
                .prop_map(|(c, s, f)| Op::Sub(c, s, f)),
            1 => (0..4u64, 0..4u8).prop_map(|(c, s)| Op::Unsub(c, s)),
            1 => (0..4u64).prop_map(Op::Close),
            4 => (0..36usize).prop_map(Op::Event),
            1 => (0..40u64).prop_map(Op::Clock),
        ]
    }

    fn sid(s: u8) -> SubId {
        SubId::new(&format!("s{s}")).expect("sub id")
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn matches_brute_force(ops in prop::collection::vec(op(), 1..60)) {
            let mut m = Monitors::new();
            let mut model: BTreeMap<(ConnId, SubId), Vec<Filter>> = BTreeMap::new();
            let mut out = Vec::new();
            for op in ops {
                match op {
                    Op::Sub(c, s, specs) => {
                        let fs: Vec<Filter> = specs.iter().map(build).collect();
                        model.insert((c, sid(s)), fs.clone());
                        m.subscribe(c, sid(s), fs);
                    }
                    Op::Unsub(c, s) => {
                        let had = model.remove(&(c, sid(s))).is_some();
                        prop_assert_eq!(m.unsubscribe(c, &sid(s)), had);
                    }
                    Op::Close(c) => {
                        model.retain(|(mc, _), _| *mc != c);
                        m.close_conn(c);
                    }
                    Op::Clock(t) => m.set_clock(t),
                    Op::Event(i) => {
                        let ev = &POOL.events[i];
                        m.matches(ev, &mut out);
                        let n = out.len();
                        let got: BTreeSet<_> = out.drain(..).collect();
                        prop_assert_eq!(got.len(), n, "duplicate recipients");
                        let want: BTreeSet<_> = model
                            .iter()
                            .filter(|(_, fs)| fs.iter().any(|f| f.matches(ev)))
                            .map(|(k, _)| k.clone())
                            .collect();
                        prop_assert_eq!(got, want);
                    }
                }
                prop_assert_eq!(m.len(), model.len());
                for c in 0..4 {
                    prop_assert_eq!(m.sub_count(c), model.keys().filter(|k| k.0 == c).count());
                }
            }
            for c in 0..4 {
                m.close_conn(c);
            }
            prop_assert_eq!(m.footprint(), 0);
            prop_assert!(m.is_empty());
        }
    }

    fn ev_tags(i: usize) -> &'static Event {
        &POOL.events[i]
    }

    fn recipients(m: &mut Monitors, ev: &Event) -> Vec<(ConnId, SubId)> {
        let mut out = vec![(99, sid(9))]; // cleared first
        m.matches(ev, &mut out);
        out.sort();
        out
    }

    #[test]
    fn replacing_a_sub_id() {
        let ev = ev_tags(0);
        let mut m = Monitors::new();
        let mut by_author = Filter::all();
        by_author.authors = Some(vec![ev.pubkey]);
        let mut by_kind = Filter::all();
        by_kind.kinds = Some(vec![ev.kind + 1]);
        m.subscribe(1, sid(0), vec![by_author]);
        assert_eq!(recipients(&mut m, ev), vec![(1, sid(0))]);
        m.subscribe(1, sid(0), vec![by_kind]);
        assert_eq!(m.len(), 1);
        assert_eq!(m.sub_count(1), 1);
        assert_eq!(recipients(&mut m, ev), vec![]);
        // The old filter's entries are gone; only the kind one remains.
        assert_eq!(m.authors.len(), 0);
        assert_eq!(m.kinds.len(), 1);
        assert!(m.unsubscribe(1, &sid(0)));
        assert!(!m.unsubscribe(1, &sid(0)));
        assert_eq!(m.footprint(), 0);
    }

    #[test]
    fn each_recipient_once() {
        let keys = Keys::from_secret([9; 32]).expect("key");
        let pk = hex::encode(&keys.pubkey);
        let ev = keys
            .sign(
                50,
                1,
                Tags::from_vecs(&[
                    vec!["t", "a"],
                    vec!["t", "b"],
                    vec!["t", "a"],
                    vec!["p", &pk],
                ]),
                "x",
                &Limits::default(),
            )
            .expect("sign");
        let mut m = Monitors::new();
        let mut tags = Filter::all();
        tags.tags = vec![TagFilter {
            name: b't',
            values: vec![b"a".to_vec(), b"b".to_vec()],
        }];
        let mut author = Filter::all();
        author.authors = Some(vec![ev.pubkey]);
        let mut kind = Filter::all();
        kind.kinds = Some(vec![1]);
        let mut never = Filter::all();
        never.kinds = Some(vec![]);
        never.never = true;
        // One sub reached through every map, several times through the tag map.
        m.subscribe(
            7,
            sid(1),
            vec![tags.clone(), author, kind, Filter::all(), never.clone()],
        );
        m.subscribe(7, sid(2), vec![tags]);
        m.subscribe(8, sid(1), vec![never]);
        assert_eq!(m.len(), 3);
        assert_eq!(recipients(&mut m, &ev), vec![(7, sid(1)), (7, sid(2))]);
        // Again: the generation counters are per call.
        assert_eq!(recipients(&mut m, &ev), vec![(7, sid(1)), (7, sid(2))]);
        m.close_conn(7);
        assert_eq!(m.len(), 1);
        assert_eq!(m.sub_count(8), 1);
        m.close_conn(8);
        assert_eq!(m.footprint(), 0);
    }

    #[test]
    fn others_ordered_by_since() {
        let ev = ev_tags(0); // created_at 10
        let mut m = Monitors::new();
        for (s, since) in [(0, 0), (1, 10), (2, 11), (3, 5)] {
            let mut f = Filter::all();
            f.since = since;
            m.subscribe(1, sid(s), vec![f]);
        }
        let mut f = Filter::all();
        f.until = 9;
        m.subscribe(2, sid(0), vec![f]);
        assert_eq!(
            recipients(&mut m, ev),
            vec![(1, sid(0)), (1, sid(1)), (1, sid(3))]
        );
    }

    #[test]
    fn filters_out_of_range_leave_their_index() {
        // Events at 10 (0), 20 (4) and 30 (8).
        let (e10, e20, e30) = (ev_tags(0), ev_tags(4), ev_tags(8));
        let mut m = Monitors::new();
        let mut old = Filter::all();
        old.until = 15;
        let mut kind_old = Filter::all();
        kind_old.kinds = Some(vec![e20.kind]);
        kind_old.until = 15;
        let mut later = Filter::all();
        later.kinds = Some(vec![e10.kind, e20.kind, e30.kind]);
        later.since = 25;
        m.subscribe(1, sid(0), vec![old]);
        m.subscribe(1, sid(1), vec![kind_old]);
        m.subscribe(1, sid(2), vec![later]);
        // An event at 20 passes the two `until` filters and does not reach `since`: all
        // three leave their indexes, and the next event at 20 visits none of them.
        assert_eq!(recipients(&mut m, e20), vec![]);
        assert_eq!((m.others.len(), m.kinds.len()), (0, 0));
        assert_eq!((m.past.len(), m.future.len()), (2, 1));
        assert_eq!(recipients(&mut m, e20), vec![]);
        // A backdated event still finds the past ones; a later one brings `since` back.
        assert_ne!(e10.kind, e20.kind);
        assert_eq!(recipients(&mut m, e10), vec![(1, sid(0))]);
        assert_eq!(recipients(&mut m, e30), vec![(1, sid(2))]);
        assert_eq!((m.past.len(), m.future.len()), (2, 0));
        assert!(!m.kinds.is_empty());
        m.close_conn(1);
        assert_eq!(m.footprint(), 0);
    }

    #[test]
    fn a_told_clock_places_new_filters_at_once() {
        let mut m = Monitors::new();
        m.set_clock(25);
        let mut old = Filter::all();
        old.until = 15;
        let mut later = Filter::all();
        later.kinds = Some(vec![1]);
        later.since = 40;
        let now = Filter::all();
        m.subscribe(1, sid(0), vec![old, later, now]);
        assert_eq!((m.past.len(), m.future.len(), m.others.len()), (1, 1, 1));
        // A backdated event still reaches the past one.
        assert_eq!(recipients(&mut m, ev_tags(0)), vec![(1, sid(0))]);
        m.close_conn(1);
        assert_eq!(m.footprint(), 0);
    }

    #[test]
    fn empty_after_closing_everything() {
        let mut m = Monitors::new();
        let mut n = 0;
        for c in 0..50u64 {
            for s in 0..4u8 {
                let spec = Spec {
                    ids: (c % 5 == 0).then(|| vec![c as usize % 6]),
                    authors: (c % 3 == 0).then(|| vec![s as usize, 4]),
                    kinds: (s % 2 == 0).then(|| vec![1, 2]),
                    tags: vec![(s as usize % 3, vec![0, 1, 2]), (2, vec![3])],
                    since: s as usize,
                    until: 0,
                };
                m.subscribe(c, sid(s), vec![build(&spec), Filter::all()]);
                n += 1;
            }
        }
        assert_eq!(m.len(), n);
        let mut out = Vec::new();
        for ev in &POOL.events {
            m.matches(ev, &mut out);
            assert!(out.len() >= 50, "the `{{}}` filters match everything");
        }
        for c in 0..50u64 {
            m.close_conn(c);
        }
        assert_eq!(m.footprint(), 0);
    }
}
