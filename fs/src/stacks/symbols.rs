//! Names for addresses: function, source file and line from the DWARF
//! debugging information (with the functions inlined at the address),
//! else the function from the ELF symbol table (`.symtab`, else the
//! dynamic symbols, which is all a stripped library keeps).

use std::borrow::Cow;
use std::sync::Arc;

use object::{Object, ObjectSymbol, SymbolKind};
use parking_lot::Mutex;

use super::module::{Reader, section};

/// What is known of one address; several when functions were inlined
/// there (innermost first).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct Resolved {
    pub function: Option<String>,
    pub file: Option<String>,
    pub line: Option<u32>,
    /// True when this function was inlined into the next one.
    pub inlined: bool,
}

/// The symbols of one ELF file.
pub(super) struct Symbols {
    /// The DWARF context: it parses lazily and is not `Sync`, hence the
    /// lock (held for one lookup).
    dwarf: Option<Mutex<addr2line::Context<Reader>>>,
    /// Functions: start, size, raw name; by start, the preferred alias of
    /// a start last.
    table: Vec<(u64, u64, Box<str>)>,
}

impl Symbols {
    pub fn none() -> Symbols {
        Symbols {
            dwarf: None,
            table: Vec::new(),
        }
    }

    /// The symbols of a file: DWARF (when `lines`) and symbol table from
    /// `debug` (the file itself, or its separate debug file, read in
    /// `data`), the symbol table from `main` when `debug` has none.
    pub fn from_objects(
        debug: &object::File<'_>,
        data: &Arc<[u8]>,
        main: &object::File<'_>,
        lines: bool,
    ) -> Symbols {
        let mut table = function_symbols(debug.symbols());
        if table.is_empty() {
            table = function_symbols(main.symbols());
        }
        if table.is_empty() {
            table = function_symbols(main.dynamic_symbols());
        }
        Symbols {
            dwarf: lines
                .then(|| load_dwarf(debug, data))
                .flatten()
                .map(Mutex::new),
            table,
        }
    }

    /// True when there is DWARF debugging information.
    pub fn has_dwarf(&self) -> bool {
        self.dwarf.is_some()
    }

    /// What is known of `addr` (an address of the file); empty when
    /// nothing is.
    pub fn lookup(&self, addr: u64) -> Vec<Resolved> {
        let mut found = self.dwarf_lookup(addr);
        let symbol = self.symbol(addr);
        match found.last_mut() {
            Some(outer) if outer.function.is_none() => outer.function = symbol,
            Some(_) => {}
            None if symbol.is_some() => found.push(Resolved {
                function: symbol,
                ..Resolved::default()
            }),
            None => {}
        }
        found
    }

    fn dwarf_lookup(&self, addr: u64) -> Vec<Resolved> {
        let Some(dwarf) = &self.dwarf else {
            return Vec::new();
        };
        let ctx = dwarf.lock();
        let mut frames = match ctx.find_frames(addr).skip_all_loads() {
            Ok(frames) => frames,
            Err(e) => {
                log::debug!("durafs: stacks: DWARF lookup of {addr:#x}: {e}");
                return Vec::new();
            }
        };
        let mut found = Vec::new();
        while let Ok(Some(frame)) = frames.next() {
            let function = frame
                .function
                .as_ref()
                .and_then(|f| f.demangle().ok())
                .map(Cow::into_owned);
            let (file, line) = match frame.location {
                Some(l) => (l.file.map(str::to_string), l.line),
                None => (None, None),
            };
            found.push(Resolved {
                function,
                file,
                line,
                inlined: true,
            });
        }
        if let Some(outer) = found.last_mut() {
            outer.inlined = false;
        }
        found
    }

    /// The demangled name of the function symbol that holds `addr`.
    fn symbol(&self, addr: u64) -> Option<String> {
        let i = self.table.partition_point(|(start, _, _)| *start <= addr);
        let (start, size, name) = self.table.get(i.checked_sub(1)?)?;
        let inside = addr < start.saturating_add(*size) || addr == *start;
        inside.then(|| addr2line::demangle_auto(Cow::Borrowed(&**name), None).into_owned())
    }
}

/// The defined function symbols, by start; of aliases at one start (as
/// `__libc_read`, `__read`, `read`), the one with the fewest leading
/// underscores last, the one lookups take.
fn function_symbols<'a>(
    symbols: impl Iterator<Item = impl ObjectSymbol<'a>>,
) -> Vec<(u64, u64, Box<str>)> {
    let mut table: Vec<(u64, u64, Box<str>)> = symbols
        .filter(|s| s.kind() == SymbolKind::Text && s.is_definition() && s.address() != 0)
        .filter_map(|s| Some((s.address(), s.size(), Box::from(s.name().ok()?))))
        .collect();
    sort_table(&mut table);
    table
}

/// Sorts symbols by start and, at one start, by decreasing count of
/// leading underscores (then name), so that the plainest alias is last.
fn sort_table(table: &mut [(u64, u64, Box<str>)]) {
    let underscores = |n: &str| n.len() - n.trim_start_matches('_').len();
    table.sort_by(|a, b| (a.0, underscores(&b.2), &b.2).cmp(&(b.0, underscores(&a.2), &a.2)));
}

/// The DWARF context of a file, when it has debugging information.
fn load_dwarf(obj: &object::File<'_>, data: &Arc<[u8]>) -> Option<addr2line::Context<Reader>> {
    obj.section_by_name(".debug_info")?;
    let empty = Reader::new(Arc::from(&[][..]), gimli::LittleEndian);
    let dwarf = gimli::Dwarf::load(|id| -> Result<Reader, gimli::Error> {
        Ok(section(obj, data, id.name()).map_or_else(|| empty.clone(), |(r, _)| r))
    })
    .ok()?;
    match addr2line::Context::from_dwarf(dwarf) {
        Ok(ctx) => Some(ctx),
        Err(e) => {
            log::debug!("durafs: stacks: unusable DWARF: {e}");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(entries: &[(u64, u64, &str)]) -> Symbols {
        let mut t: Vec<(u64, u64, Box<str>)> = entries
            .iter()
            .map(|&(a, s, n)| (a, s, Box::from(n)))
            .collect();
        sort_table(&mut t);
        Symbols {
            dwarf: None,
            table: t,
        }
    }

    #[test]
    fn the_symbol_holding_an_address_is_found_and_aliases_prefer_the_plain_name() {
        let s = table(&[
            (0x100, 0x20, "__libc_read"),
            (0x100, 0x20, "read"),
            (0x100, 0x20, "__read"),
            (0x200, 0x10, "_ZN6durafs6stacks4test17h0123456789abcdefE"),
        ]);
        assert_eq!(s.symbol(0x110).as_deref(), Some("read"));
        assert_eq!(s.symbol(0x120), None, "past the end of read");
        assert_eq!(s.symbol(0xff), None);
        assert_eq!(s.symbol(0x205).as_deref(), Some("durafs::stacks::test"));
        let r = s.lookup(0x105);
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].function.as_deref(), Some("read"));
        assert_eq!(
            (r[0].file.as_deref(), r[0].line, r[0].inlined),
            (None, None, false)
        );
        assert!(s.lookup(0x300).is_empty());
    }

    #[test]
    fn function_symbols_keeps_defined_functions_only() {
        let exe = std::env::current_exe().unwrap();
        let data = std::fs::read(exe).unwrap();
        let obj = object::File::parse(&*data).unwrap();
        let t = function_symbols(obj.symbols());
        assert!(t.windows(2).all(|w| w[0].0 <= w[1].0));
        assert!(
            t.iter()
                .any(|(_, _, n)| n.contains("function_symbols_keeps"))
        );
    }
}
