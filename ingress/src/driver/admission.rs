//! Admission control of one core: connection slots as RAII permits.
//!
//! Counting is per core, with no sharing between threads. The per-IP cap therefore holds per
//! core: one address can have up to `cores × connections_per_ip_max` connections in total,
//! since the kernel spreads its connections over the cores' SO_REUSEPORT listeners by source
//! port. That is acceptable because the cap exists to keep one client from taking a core's
//! slots, and each core enforces exactly that without touching another core's state.

use std::cell::RefCell;
use std::collections::HashMap;
use std::net::IpAddr;
use std::rc::Rc;

/// Why a connection was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// The core is at `connections_per_core_max`.
    CoreFull,
    /// The client address is at `connections_per_ip_max`.
    IpFull,
}

struct Slots {
    open: usize,
    per_ip: HashMap<IpAddr, usize>,
}

/// Connection slots of one core.
pub(crate) struct Admission {
    slots: RefCell<Slots>,
    core_max: usize,
    ip_max: usize,
}

impl Admission {
    /// A core admitting `core_max` connections, `ip_max` from any one address.
    pub(crate) fn new(core_max: usize, ip_max: usize) -> Rc<Self> {
        // The map never holds more than core_max addresses, so reserve it once.
        let per_ip = HashMap::with_capacity(core_max.min(65_536));
        Rc::new(Self {
            slots: RefCell::new(Slots { open: 0, per_ip }),
            core_max,
            ip_max,
        })
    }

    /// Takes a slot for a connection from `ip`, or says why not.
    pub(crate) fn admit(self: &Rc<Self>, ip: IpAddr) -> Result<Permit, Refusal> {
        let mut slots = self.slots.borrow_mut();
        if slots.open >= self.core_max {
            return Err(Refusal::CoreFull);
        }
        let from_ip = slots.per_ip.entry(ip).or_insert(0);
        if *from_ip >= self.ip_max {
            return Err(Refusal::IpFull);
        }
        *from_ip += 1;
        slots.open += 1;
        Ok(Permit {
            admission: Rc::clone(self),
            ip,
        })
    }

    /// Connections currently admitted.
    pub(crate) fn open(&self) -> usize {
        self.slots.borrow().open
    }
}

/// One admitted connection; dropping it frees the slot.
pub(crate) struct Permit {
    admission: Rc<Admission>,
    ip: IpAddr,
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut slots = self.admission.slots.borrow_mut();
        slots.open -= 1;
        if let Some(n) = slots.per_ip.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                slots.per_ip.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Goal: both caps refuse exactly at their limit and dropping a permit frees its slot.
    #[test]
    fn caps_at_limits_and_releases() {
        let a = Admission::new(3, 2);
        let ip1: IpAddr = [127, 0, 0, 1].into();
        let ip2: IpAddr = [127, 0, 0, 2].into();
        let p1 = a.admit(ip1).expect("first");
        let _p2 = a.admit(ip1).expect("second");
        assert_eq!(a.admit(ip1).err(), Some(Refusal::IpFull));
        let _p3 = a.admit(ip2).expect("other ip");
        assert_eq!(a.admit(ip2).err(), Some(Refusal::CoreFull));
        assert_eq!(a.open(), 3);
        drop(p1);
        assert_eq!(a.open(), 2);
        let _p4 = a.admit(ip1).expect("slot freed");
        assert_eq!(a.slots.borrow().per_ip.len(), 2);
    }
}
