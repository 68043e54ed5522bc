//! Unwinding an x86_64 stack from the two registers the kernel gives
//! (`sp` and `pc` of a thread blocked in a system call).
//!
//! Each step uses the call frame information (CFI) of the code at the
//! frame's address (`.eh_frame`, else `.debug_frame`): the row for that
//! address says how to compute the canonical frame address (CFA) and
//! where the caller's registers were saved. Registers are tracked as
//! known or unknown: at the start only `rsp` and `rip` are known.
//!
//! When a row needs an unknown register (code compiled with frame
//! pointers, whose CFA is `rbp + 16`, reached before any frame restored
//! `rbp`) or there is no usable row, the step falls back to a **stack
//! scan**, best-effort and marked [`FoundBy::Scan`]: it looks, upwards
//! from `rsp`, for a word that is a return address (it points into
//! executable code just after a call instruction), preferring one whose
//! call instruction targets the current function. Frames found after a
//! scanned one are only as good as that guess.

use std::collections::HashMap;

use gimli::{
    BaseAddresses, CfaRule, CieOrFde, DebugFrame, EhFrame, Register, RegisterRule, UnwindContext,
    UnwindSection,
};

use super::FoundBy;
use super::module::{Reader, section};
use super::proc::Memory;

/// DWARF numbers of the x86_64 registers that matter here.
pub(super) const RBP: u16 = 6;
pub(super) const RSP: u16 = 7;
/// The return address "register" (`rip` of the caller).
pub(super) const RA: u16 = 16;
const REGISTERS: usize = 17;
/// Registers a call may clobber (System V x86_64): unknown in a caller.
const CALLER_SAVED: [u16; 9] = [0, 1, 2, 4, 5, 8, 9, 10, 11];
/// How far above `rsp` a stack scan looks.
const SCAN_BYTES: u64 = 64 * 1024;

/// How the CFA of a row is computed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Cfa {
    /// The value of a register plus an offset.
    RegisterOffset(u16, i64),
    /// A DWARF expression (signal trampolines, PLT stubs): not evaluated.
    Unsupported,
}

/// Where a register of the caller is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Rule {
    /// Lost (for the return address: the outermost frame).
    Undefined,
    /// Unchanged by the callee.
    Same,
    /// Saved at CFA + offset.
    Offset(i64),
    /// Its value is CFA + offset.
    ValOffset(i64),
    /// In another register.
    Register(u16),
    /// An expression or an architectural rule: not evaluated.
    Unsupported,
}

/// The CFI row of an address, in the process's addresses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Row {
    /// Address of the first instruction of the function (of its FDE).
    pub start: u64,
    pub cfa: Cfa,
    /// The rules of the registers the row names; the others are unchanged.
    pub rules: Vec<(u16, Rule)>,
}

impl Row {
    fn rule(&self, reg: u16) -> Option<&Rule> {
        self.rules
            .iter()
            .find(|(r, _)| *r == reg)
            .map(|(_, rule)| rule)
    }

    /// This row with its function start moved by `bias`.
    pub fn rebased(mut self, bias: u64) -> Row {
        self.start = self.start.wrapping_add(bias);
        self
    }
}

/// The registers of a frame, each known or not.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Regs([Option<u64>; REGISTERS]);

impl Regs {
    /// The registers the kernel gives for a thread in a system call.
    pub fn new(pc: u64, sp: u64) -> Regs {
        let mut r = Regs([None; REGISTERS]);
        r.0[RA as usize] = Some(pc);
        r.0[RSP as usize] = Some(sp);
        r
    }

    pub fn get(&self, reg: u16) -> Option<u64> {
        self.0.get(reg as usize).copied().flatten()
    }

    fn set(&mut self, reg: u16, value: Option<u64>) {
        if let Some(slot) = self.0.get_mut(reg as usize) {
            *slot = value;
        }
    }

    pub fn pc(&self) -> u64 {
        self.get(RA).unwrap_or(0)
    }

    pub fn sp(&self) -> u64 {
        self.get(RSP).unwrap_or(0)
    }
}

/// What the unwinder needs to know of the process besides its memory.
pub(super) trait Code {
    /// The CFI row for `addr` (already lowered by one for return
    /// addresses), with its function start in the process's addresses.
    fn row(&self, addr: u64) -> Option<Row>;
    /// True when `addr` is in executable memory.
    fn is_code(&self, addr: u64) -> bool;
    /// The end of the stack mapping that holds `sp` (bounds scans).
    fn stack_end(&self, sp: u64) -> u64;
}

/// Why a CFI step could not be made.
#[derive(Debug, PartialEq, Eq)]
enum StepError {
    /// The row needs a register whose value is unknown.
    Unknown(u16),
    /// The row has a rule this unwinder does not evaluate.
    Unsupported,
    /// A saved register could not be read from the stack.
    Unreadable,
}

/// Unwinds from `start` (frame 0: its `pc` is the exact instruction
/// pointer, not a return address): at most `max` frames, each with how
/// it was found. Stops at the outermost frame, at a frame it cannot get
/// past, or where the stack pointer would not go up.
pub(super) fn unwind(
    start: Regs,
    code: &dyn Code,
    mem: &mut dyn Memory,
    max: usize,
) -> Vec<(u64, FoundBy)> {
    let mut frames = vec![(start.pc(), FoundBy::Registers)];
    let mut regs = start;
    while frames.len() < max {
        let first = frames.len() == 1;
        let lookup = if first {
            regs.pc()
        } else {
            regs.pc().wrapping_sub(1)
        };
        let row = code.row(lookup);
        let step = match &row {
            Some(row) => match step_cfi(row, &regs, mem) {
                Ok(Some(next)) => Some((next, FoundBy::Cfi)),
                Ok(None) => break,
                Err(StepError::Unknown(RBP)) => frame_record_scan(row, &regs, code, mem),
                Err(e) => {
                    log::debug!("durafs: stacks: no CFI step at {lookup:#x}: {e:?}");
                    return_address_scan(Some(row.start), &regs, code, mem)
                }
            },
            None => return_address_scan(None, &regs, code, mem),
        };
        let Some((next, found_by)) = step else { break };
        if next.pc() == 0 || next.sp() <= regs.sp() || !code.is_code(next.pc()) {
            break;
        }
        frames.push((next.pc(), found_by));
        regs = next;
    }
    frames
}

/// One step by the CFI row: the caller's registers, or None when the row
/// says this is the outermost frame (its return address is undefined).
fn step_cfi(row: &Row, regs: &Regs, mem: &mut dyn Memory) -> Result<Option<Regs>, StepError> {
    let cfa = match row.cfa {
        Cfa::RegisterOffset(reg, offset) => regs
            .get(reg)
            .ok_or(StepError::Unknown(reg))?
            .wrapping_add_signed(offset),
        Cfa::Unsupported => return Err(StepError::Unsupported),
    };
    if row.rule(RA).is_none_or(|r| *r == Rule::Undefined) {
        return Ok(None);
    }
    caller_regs(row, regs, cfa, mem).map(Some)
}

/// The caller's registers once the CFA is known.
fn caller_regs(row: &Row, regs: &Regs, cfa: u64, mem: &mut dyn Memory) -> Result<Regs, StepError> {
    let mut next = regs.clone();
    for reg in CALLER_SAVED {
        next.set(reg, None);
    }
    for (reg, rule) in &row.rules {
        let value = match rule {
            Rule::Undefined | Rule::Unsupported => None,
            Rule::Same => regs.get(*reg),
            Rule::Offset(o) => Some(
                mem.read_u64(cfa.wrapping_add_signed(*o))
                    .ok_or(StepError::Unreadable)?,
            ),
            Rule::ValOffset(o) => Some(cfa.wrapping_add_signed(*o)),
            Rule::Register(r) => regs.get(*r),
        };
        next.set(*reg, value);
    }
    if next.get(RA).is_none() {
        return Err(StepError::Unsupported);
    }
    next.set(RSP, Some(cfa));
    Ok(next)
}

/// The step for a row whose CFA is `rbp + offset` while `rbp` is unknown:
/// finds the frame record (the saved `rbp` and the return address above
/// it) by scanning the stack. A candidate is taken when its return
/// address follows a call to this very function; failing any, when it
/// follows any call.
fn frame_record_scan(
    row: &Row,
    regs: &Regs,
    code: &dyn Code,
    mem: &mut dyn Memory,
) -> Option<(Regs, FoundBy)> {
    let Cfa::RegisterOffset(RBP, offset) = row.cfa else {
        return None;
    };
    let Some(Rule::Offset(ra_offset)) = row.rule(RA) else {
        return None;
    };
    let try_at = |slot: u64, mem: &mut dyn Memory| -> Option<(u64, Call)> {
        let cfa = slot.wrapping_add_signed(offset);
        let ra = mem.read_u64(cfa.wrapping_add_signed(*ra_offset))?;
        Some((cfa, call_before(ra, code, mem)?))
    };
    let slots = scan_slots(regs.sp(), code);
    let found = slots
        .clone()
        .find_map(|s| try_at(s, mem).filter(|(_, c)| *c == Call::Direct(row.start)))
        .or_else(|| slots.clone().find_map(|s| try_at(s, mem)));
    let (cfa, _) = found?;
    let mut with_rbp = regs.clone();
    with_rbp.set(RBP, Some(cfa.wrapping_add_signed(offset.wrapping_neg())));
    let next = caller_regs(row, &with_rbp, cfa, mem).ok()?;
    Some((next, FoundBy::Scan))
}

/// The step when there is no usable CFI: the first word above `rsp` that
/// is a return address (one after a call to `function`, when its start is
/// known, is preferred), taken as the caller's `rip`, with `rsp` just
/// above it. Other registers are kept as they were.
fn return_address_scan(
    function: Option<u64>,
    regs: &Regs,
    code: &dyn Code,
    mem: &mut dyn Memory,
) -> Option<(Regs, FoundBy)> {
    let slots = scan_slots(regs.sp(), code);
    let mut try_at = |slot: u64, want: Option<u64>| -> Option<(u64, u64)> {
        let ra = mem.read_u64(slot)?;
        let call = call_before(ra, code, mem)?;
        match want {
            Some(target) if call != Call::Direct(target) => None,
            _ => Some((slot, ra)),
        }
    };
    let found = match function {
        Some(f) => slots.clone().find_map(|s| try_at(s, Some(f))),
        None => None,
    };
    let (slot, ra) = found.or_else(|| slots.clone().find_map(|s| try_at(s, None)))?;
    let mut next = regs.clone();
    next.set(RA, Some(ra));
    next.set(RSP, Some(slot.wrapping_add(8)));
    Some((next, FoundBy::Scan))
}

/// The 8-byte aligned stack slots a scan looks at, from `sp` up.
fn scan_slots(sp: u64, code: &dyn Code) -> impl Iterator<Item = u64> + Clone {
    let end = code.stack_end(sp).min(sp.saturating_add(SCAN_BYTES));
    (sp & !7..end.saturating_sub(7)).step_by(8)
}

/// A call instruction found just before a return address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Call {
    /// `call rel32`, to this address.
    Direct(u64),
    /// `call` through a register or memory.
    Indirect,
}

/// The call instruction that ends just before `ra`, if `ra` is in
/// executable memory and one of the x86_64 call encodings is there.
pub(super) fn call_before(ra: u64, code: &dyn Code, mem: &mut dyn Memory) -> Option<Call> {
    if ra < 7 || !code.is_code(ra) {
        return None;
    }
    let mut b = [0u8; 7];
    if !mem.read(ra - 7, &mut b) {
        return None;
    }
    decode_call(&b, ra)
}

/// Decodes the 7 bytes before `ra` (`b[6]` is the last byte of the
/// instruction) as the end of a call instruction.
pub(super) fn decode_call(b: &[u8; 7], ra: u64) -> Option<Call> {
    // E8 rel32: the five bytes before the return address.
    if b[2] == 0xe8 {
        let rel = i32::from_le_bytes([b[3], b[4], b[5], b[6]]);
        return Some(Call::Direct(ra.wrapping_add_signed(rel as i64)));
    }
    // FF /2 with a ModRM byte at b[i + 1], the instruction being 7 - i
    // bytes long: which lengths each ModRM form makes.
    let indirect = (0..6).any(|i| {
        let modrm = b[i + 1];
        if b[i] != 0xff || (modrm >> 3) & 7 != 2 {
            return false;
        }
        let (md, rm) = (modrm >> 6, modrm & 7);
        let len = 7 - i;
        match (md, rm) {
            (3, _) => len == 2,
            (0, 5) => len == 6,
            (0, 4) => len == 3,
            (0, _) => len == 2,
            (1, 4) => len == 4,
            (1, _) => len == 3,
            (2, 4) => len == 7,
            (2, _) => len == 6,
            _ => false,
        }
    });
    indirect.then_some(Call::Indirect)
}

/// The call frame information of one ELF file: its `.eh_frame` and its
/// `.debug_frame`, each with an index of its FDEs by address.
pub(super) struct Cfi {
    eh_frame: Option<Table<EhFrame<Reader>>>,
    debug_frame: Option<Table<DebugFrame<Reader>>>,
}

struct Table<S: UnwindSection<Reader>> {
    section: S,
    bases: BaseAddresses,
    /// (first address, end address, FDE offset), by first address.
    index: Vec<(u64, u64, S::Offset)>,
}

impl Cfi {
    /// The CFI of an ELF file read in `data`; None when it has none.
    pub fn from_object(obj: &object::File<'_>, data: &std::sync::Arc<[u8]>) -> Option<Cfi> {
        let addr = |name| section(obj, data, name).map(|(_, a)| a);
        let eh_frame = section(obj, data, ".eh_frame").and_then(|(reader, eh_addr)| {
            let mut bases = BaseAddresses::default().set_eh_frame(eh_addr);
            for (name, set) in [
                (
                    ".eh_frame_hdr",
                    BaseAddresses::set_eh_frame_hdr as fn(_, _) -> _,
                ),
                (".text", BaseAddresses::set_text),
                (".got", BaseAddresses::set_got),
            ] {
                if let Some(a) = addr(name) {
                    bases = set(bases, a);
                }
            }
            Table::build(EhFrame::from(reader), bases)
        });
        let debug_frame = section(obj, data, ".debug_frame").and_then(|(reader, _)| {
            Table::build(DebugFrame::from(reader), BaseAddresses::default())
        });
        (eh_frame.is_some() || debug_frame.is_some()).then_some(Cfi {
            eh_frame,
            debug_frame,
        })
    }

    /// The row for `addr` (an address of the file), from `.eh_frame` or
    /// else `.debug_frame`.
    pub fn row(&self, addr: u64) -> Option<Row> {
        let eh = self.eh_frame.as_ref().and_then(|t| t.row(addr));
        eh.or_else(|| self.debug_frame.as_ref().and_then(|t| t.row(addr)))
    }

    /// How many FDEs were indexed (for tests and logs).
    pub fn len(&self) -> usize {
        self.eh_frame.as_ref().map_or(0, |t| t.index.len())
            + self.debug_frame.as_ref().map_or(0, |t| t.index.len())
    }
}

impl<S: UnwindSection<Reader>> Table<S> {
    /// Indexes every FDE of `section`; parsing stops at the first entry
    /// that cannot be parsed (the ones before are kept). None when empty.
    fn build(section: S, bases: BaseAddresses) -> Option<Table<S>> {
        let mut cies = HashMap::new();
        let mut index = Vec::new();
        let mut entries = section.entries(&bases);
        loop {
            let partial = match entries.next() {
                Ok(Some(CieOrFde::Fde(partial))) => partial,
                Ok(Some(CieOrFde::Cie(_))) => continue,
                Ok(None) => break,
                Err(e) => {
                    log::debug!("durafs: stacks: CFI entries end at an error: {e}");
                    break;
                }
            };
            let offset = S::Offset::from(partial.offset());
            let fde = partial.parse(|s: &S, b: &BaseAddresses, o: S::Offset| {
                let key = gimli::UnwindOffset::into(o);
                if let Some(cie) = cies.get(&key) {
                    return Ok(Clone::clone(cie));
                }
                let cie = s.cie_from_offset(b, o)?;
                cies.insert(key, cie.clone());
                Ok(cie)
            });
            if let Ok(fde) = fde
                && fde.len() > 0
            {
                index.push((fde.initial_address(), fde.end_address(), offset));
            }
        }
        index.sort_by_key(|&(start, _, _)| start);
        (!index.is_empty()).then_some(Table {
            section,
            bases,
            index,
        })
    }

    fn row(&self, addr: u64) -> Option<Row> {
        let i = self.index.partition_point(|&(start, _, _)| start <= addr);
        let &(start, end, offset) = self.index.get(i.checked_sub(1)?)?;
        if addr >= end {
            return None;
        }
        let partial = self
            .section
            .partial_fde_from_offset(&self.bases, offset)
            .ok()?;
        let fde = partial.parse(S::cie_from_offset).ok()?;
        let mut ctx = Box::new(UnwindContext::new());
        let row = fde
            .unwind_info_for_address(&self.section, &self.bases, &mut ctx, addr)
            .ok()?;
        let cfa = match row.cfa() {
            CfaRule::RegisterAndOffset { register, offset } => {
                Cfa::RegisterOffset(register.0, *offset)
            }
            CfaRule::Expression(_) => Cfa::Unsupported,
        };
        let rules = row
            .registers()
            .map(|(reg, rule)| (reg.0, convert_rule(rule)))
            .collect();
        Some(Row { start, cfa, rules })
    }
}

fn convert_rule<T: gimli::ReaderOffset>(rule: &RegisterRule<T>) -> Rule {
    match rule {
        RegisterRule::Undefined => Rule::Undefined,
        RegisterRule::SameValue => Rule::Same,
        RegisterRule::Offset(o) => Rule::Offset(*o),
        RegisterRule::ValOffset(o) => Rule::ValOffset(*o),
        RegisterRule::Register(Register(r)) => Rule::Register(*r),
        _ => Rule::Unsupported,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Memory as 8-byte words and call instructions before return
    /// addresses; code as rows by address range.
    #[derive(Clone)]
    struct Fake {
        words: HashMap<u64, u64>,
        calls: HashMap<u64, [u8; 7]>,
        rows: Vec<(u64, u64, Row)>,
    }

    impl Memory for Fake {
        fn read(&mut self, addr: u64, buf: &mut [u8]) -> bool {
            let bytes = match buf.len() {
                8 => self.words.get(&addr).map(|w| w.to_le_bytes().to_vec()),
                7 => self.calls.get(&(addr + 7)).map(|b| b.to_vec()),
                _ => None,
            };
            bytes.map(|b| buf.copy_from_slice(&b)).is_some()
        }
    }

    impl Code for Fake {
        fn row(&self, addr: u64) -> Option<Row> {
            let found = self.rows.iter().find(|(s, e, _)| *s <= addr && addr < *e);
            found.map(|(_, _, r)| r.clone())
        }
        fn is_code(&self, addr: u64) -> bool {
            (0x1000..0x9000).contains(&addr)
        }
        fn stack_end(&self, _sp: u64) -> u64 {
            0x8000_0000
        }
    }

    fn call_to(target: u64, ra: u64) -> [u8; 7] {
        let r = ((target as i64 - ra as i64) as i32).to_le_bytes();
        [0x90, 0x90, 0xe8, r[0], r[1], r[2], r[3]]
    }

    fn sp_row(start: u64, frame: i64, ra: Rule) -> Row {
        Row {
            start,
            cfa: Cfa::RegisterOffset(RSP, frame),
            rules: vec![(RA, ra)],
        }
    }

    #[test]
    fn call_encodings_are_recognised() {
        let ra = 0x2000;
        let direct = decode_call(&call_to(0x1800, ra), ra);
        assert_eq!(direct, Some(Call::Direct(0x1800)));
        // call *%rax (ff d0), call *0x10(%rbx) (ff 53 10),
        // call *0x200(%rip) (ff 15 + disp32), call *(%rsp) (ff 14 24),
        // call *%r11 (41 ff d3).
        let forms: [[u8; 7]; 5] = [
            [0, 0, 0, 0, 0, 0xff, 0xd0],
            [0, 0, 0, 0, 0xff, 0x53, 0x10],
            [0, 0xff, 0x15, 0, 2, 0, 0],
            [0, 0, 0, 0, 0xff, 0x14, 0x24],
            [0, 0, 0, 0, 0x41, 0xff, 0xd3],
        ];
        for f in forms {
            assert_eq!(decode_call(&f, ra), Some(Call::Indirect), "{f:x?}");
        }
        assert_eq!(decode_call(&[0x90; 7], ra), None);
        // ff /0 (inc %eax) is no call.
        assert_eq!(decode_call(&[0, 0, 0, 0, 0, 0xff, 0xc0], ra), None);
    }

    const SP: u64 = 0x7000_0000;

    /// Frame 0 in a leaf wrapper (sp-based CFI) at 0x1000, called from
    /// `f` at 0x3000 (frame pointer: CFA = rbp + 16), called from `main`
    /// at 0x5000 (sp-based), called from `start` at 0x7000 (outermost).
    /// f's locals hold a stale return address after a call to another
    /// function: a naive scan would take it.
    fn stack() -> (Fake, Regs) {
        let (wrapper, f, main, start) = (0x1000u64, 0x3000u64, 0x5000u64, 0x7000u64);
        let (ra_f, ra_main, ra_start, stale) = (0x3020u64, 0x5030u64, 0x7010u64, 0x5010u64);
        let words = HashMap::from([
            (SP, ra_f),          // pushed by `call wrapper`
            (SP + 8, 0x1111),    // f's locals...
            (SP + 16, stale),    // ...with a stale return address
            (SP + 40, 0xdead),   // f's frame record: main's rbp
            (SP + 48, ra_main),  // and f's return address
            (SP + 64, ra_start), // main: 8 bytes of locals, then its RA
        ]);
        let calls = HashMap::from([
            (ra_f, call_to(wrapper, ra_f)),
            (ra_main, call_to(f, ra_main)),
            (stale, call_to(wrapper, stale)),
            (ra_start, call_to(main, ra_start)),
        ]);
        let rbp_row = Row {
            start: f,
            cfa: Cfa::RegisterOffset(RBP, 16),
            rules: vec![(RA, Rule::Offset(-8)), (RBP, Rule::Offset(-16))],
        };
        let rows = vec![
            (
                wrapper,
                wrapper + 0x100,
                sp_row(wrapper, 8, Rule::Offset(-8)),
            ),
            (f, f + 0x100, rbp_row),
            (main, main + 0x100, sp_row(main, 16, Rule::Offset(-8))),
            (start, start + 0x100, sp_row(start, 16, Rule::Undefined)),
        ];
        (Fake { words, calls, rows }, Regs::new(wrapper + 0x12, SP))
    }

    #[test]
    fn cfi_then_a_frame_record_scan_then_cfi_to_the_outermost_frame() {
        let (mut fake, regs) = stack();
        let frames = unwind(regs, &fake.clone(), &mut fake, 64);
        let want = vec![
            (0x1012, FoundBy::Registers),
            (0x3020, FoundBy::Cfi),
            (0x5030, FoundBy::Scan),
            (0x7010, FoundBy::Cfi),
        ];
        assert_eq!(frames, want);
    }

    #[test]
    fn a_known_rbp_makes_the_frame_pointer_step_exact() {
        let (mut fake, mut regs) = stack();
        regs.set(RBP, Some(SP + 40));
        let frames = unwind(regs, &fake.clone(), &mut fake, 64);
        assert_eq!(frames[2], (0x5030, FoundBy::Cfi));
        assert_eq!(frames.len(), 4);
    }

    #[test]
    fn the_depth_limit_and_an_unreadable_stack_end_the_walk_cleanly() {
        let (mut fake, regs) = stack();
        let code = fake.clone();
        assert_eq!(unwind(regs.clone(), &code, &mut fake, 2).len(), 2);
        fake.words.clear();
        let frames = unwind(regs, &code, &mut fake, 64);
        assert_eq!(frames, vec![(0x1012, FoundBy::Registers)]);
    }

    #[test]
    fn without_cfi_the_return_address_is_found_by_a_scan() {
        let (mut fake, regs) = stack();
        let mut code = fake.clone();
        code.rows.clear();
        let frames = unwind(regs, &code, &mut fake, 2);
        assert_eq!(frames[1], (0x3020, FoundBy::Scan));
    }

    #[test]
    fn this_test_binary_has_rows_for_its_functions() {
        let exe = std::env::current_exe().unwrap();
        let data: std::sync::Arc<[u8]> = std::fs::read(exe).unwrap().into();
        let obj = object::File::parse(&*data).unwrap();
        let cfi = Cfi::from_object(&obj, &data).unwrap();
        assert!(cfi.len() > 100);
        // Addresses of the file, not of this process (a PIE is moved).
        use object::{Object, ObjectSymbol};
        let sym = obj
            .symbols()
            .find(|s| {
                s.name()
                    .is_ok_and(|n| n.contains("this_test_binary_has_rows"))
            })
            .unwrap();
        let row = cfi.row(sym.address()).unwrap();
        assert_eq!(row.start, sym.address());
        assert_eq!(row.cfa, Cfa::RegisterOffset(RSP, 8));
        assert_eq!(row.rule(RA), Some(&Rule::Offset(-8)));
    }
}
