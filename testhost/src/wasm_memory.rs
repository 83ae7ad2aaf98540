//! Reads a component's linear memory layout from its bytes: what Spin has to clear after
//! every request is the memory an instance starts with (and grows to), so the size of the
//! initial memory and of the stack in it are pinned by a test.

use anyhow::{Context, Result, bail};

/// The linear memory of one core module inside a component.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CoreMemory {
    /// The memory an instance starts with, in bytes.
    pub initial_bytes: u64,
    /// The stack: the first global's initial value (`__stack_pointer`; Rust puts the stack
    /// first, growing down from there), in bytes.
    pub stack_bytes: Option<u64>,
}

/// Every core module with a memory in `component`, in the order they appear.
pub fn core_memories(component: &[u8]) -> Result<Vec<CoreMemory>> {
    if component.get(..4) != Some(b"\0asm") {
        bail!("not a Wasm binary");
    }
    let mut found = Vec::new();
    for (id, body) in sections(component)? {
        // Section 1 of a component is a core module.
        if id == 1 {
            let mut memory = None;
            let mut stack = None;
            for (id, body) in sections(body)? {
                let mut r = Reader { bytes: body, at: 0 };
                match id {
                    // memory section: count, limits flags, minimum pages.
                    5 if r.leb()? > 0 => {
                        r.byte()?;
                        memory = Some(r.leb()? * 65_536);
                    }
                    // global section: count, then type, mutability and an init expression.
                    6 if r.leb()? > 0 => {
                        r.byte()?;
                        r.byte()?;
                        if r.byte()? == 0x41 {
                            stack = u64::try_from(r.sleb()?).ok();
                        }
                    }
                    _ => {}
                }
            }
            if let Some(initial_bytes) = memory {
                found.push(CoreMemory {
                    initial_bytes,
                    stack_bytes: stack,
                });
            }
        }
    }
    Ok(found)
}

/// The sections of a module or component: (id, contents).
fn sections(bytes: &[u8]) -> Result<Vec<(u8, &[u8])>> {
    let mut r = Reader { bytes, at: 8 };
    let mut out = Vec::new();
    while r.at < bytes.len() {
        let id = r.byte()?;
        let len = usize::try_from(r.leb()?)?;
        let body = bytes
            .get(r.at..r.at + len)
            .context("section runs past the end")?;
        out.push((id, body));
        r.at += len;
    }
    Ok(out)
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn byte(&mut self) -> Result<u8> {
        let b = *self.bytes.get(self.at).context("unexpected end")?;
        self.at += 1;
        Ok(b)
    }
    fn leb(&mut self) -> Result<u64> {
        let (mut value, mut shift) = (0u64, 0);
        loop {
            let b = self.byte()?;
            value |= u64::from(b & 0x7f) << shift;
            if b < 0x80 {
                return Ok(value);
            }
            shift += 7;
            if shift > 63 {
                bail!("LEB128 too long");
            }
        }
    }
    fn sleb(&mut self) -> Result<i64> {
        let (mut value, mut shift) = (0i64, 0);
        loop {
            let b = self.byte()?;
            value |= i64::from(b & 0x7f) << shift;
            shift += 7;
            if b < 0x80 {
                if shift < 64 && b & 0x40 != 0 {
                    value |= -1i64 << shift;
                }
                return Ok(value);
            }
            if shift > 63 {
                bail!("LEB128 too long");
            }
        }
    }
}
