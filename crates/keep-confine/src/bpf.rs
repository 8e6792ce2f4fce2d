//! A classic-BPF seccomp program that finds the system call by binary search.
//!
//! Written here rather than with `seccompiler`, which emits one linear chain of comparisons:
//! the kernel computes its per-system-call action cache by running the filter for every
//! system call number when it is installed, and a linear chain of ~140 entries made that
//! cost ~0.4 ms on every start of a Keep (10% of a warm start). A search tree costs a few
//! comparisons per number, at install time and for the calls whose arguments are checked.

/// What the filter does with one system call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// Allowed with any arguments.
    Allow,
    /// Fails with this errno.
    Errno(u32),
    /// Allowed when the low 32 bits of argument 0, masked with `mask`, equal `value`.
    Arg0Masked {
        /// The bits looked at.
        mask: u32,
        /// What they must be.
        value: u32,
    },
    /// Allowed when the low 32 bits of argument 0 are one of these.
    Arg0OneOf(&'static [u32]),
}

/// `BPF_LD | BPF_W | BPF_ABS`
const LD_ABS: u16 = 0x20;
/// `BPF_ALU | BPF_AND | BPF_K`
const AND_K: u16 = 0x54;
/// `BPF_JMP | BPF_JEQ | BPF_K`
const JEQ: u16 = 0x15;
/// `BPF_JMP | BPF_JGE | BPF_K`
const JGE: u16 = 0x35;
/// `BPF_JMP | BPF_JGT | BPF_K`
const JGT: u16 = 0x25;
/// `BPF_RET | BPF_K`
const RET: u16 = 0x06;

const SECCOMP_RET_ALLOW: u32 = 0x7fff_0000;
const SECCOMP_RET_ERRNO: u32 = 0x0005_0000;
const SECCOMP_RET_KILL_PROCESS: u32 = 0x8000_0000;

/// Offsets in `struct seccomp_data`.
const NR: u32 = 0;
const ARCH: u32 = 4;
const ARG0_LOW: u32 = 16;

/// The x32 ABI's system call bit on x86_64: such calls are refused outright.
const X32_SYSCALL_BIT: u32 = 0x4000_0000;

fn op(code: u16, jt: u8, jf: u8, k: u32) -> libc::sock_filter {
    libc::sock_filter { code, jt, jf, k }
}

fn ret(action: u32) -> libc::sock_filter {
    op(RET, 0, 0, action)
}

/// A run of consecutive system call numbers with the same rule.
#[derive(Debug, Clone, Copy)]
struct Span {
    low: u32,
    high: u32,
    rule: Rule,
}

/// Where a conditional jump goes.
#[derive(Debug, Clone, Copy)]
enum Target {
    /// The next instruction.
    Next,
    /// The shared `RET ALLOW` at the end.
    Allow,
    /// The shared `RET ERRNO` at the end.
    Deny,
    /// So many instructions further.
    Skip(usize),
}

/// An instruction whose jump targets are resolved once the program is laid out.
#[derive(Debug, Clone, Copy)]
struct Insn {
    code: u16,
    jt: Target,
    jf: Target,
    k: u32,
}

fn insn(code: u16, k: u32) -> Insn {
    Insn {
        code,
        jt: Target::Next,
        jf: Target::Next,
        k,
    }
}

fn jump(code: u16, k: u32, jt: Target, jf: Target) -> Insn {
    Insn { code, jt, jf, k }
}

/// The program: kill the process on a foreign architecture, then `rules` (each system call
/// number once), and `errno` for every other call. Consecutive numbers that are simply
/// allowed are tested as one range, and every leaf jumps to one shared ALLOW and one shared
/// ERRNO: the program's length is what installing it costs. `None` if it does not fit the
/// 8-bit jumps of classic BPF (hundreds of rules).
pub fn program(
    audit_arch: u32,
    rules: &[(u32, Rule)],
    errno: u32,
) -> Option<Vec<libc::sock_filter>> {
    let mut sorted = rules.to_vec();
    sorted.sort_by_key(|(nr, _)| *nr);
    let mut spans: Vec<Span> = Vec::new();
    for (nr, rule) in sorted {
        match spans.last_mut() {
            Some(last)
                if rule == Rule::Allow && last.rule == Rule::Allow && last.high + 1 == nr =>
            {
                last.high = nr;
            }
            _ => spans.push(Span {
                low: nr,
                high: nr,
                rule,
            }),
        }
    }
    let mut body = vec![
        insn(LD_ABS, ARCH),
        jump(JEQ, audit_arch, Target::Skip(1), Target::Next),
        insn(RET, SECCOMP_RET_KILL_PROCESS),
        insn(LD_ABS, NR),
        jump(JGE, X32_SYSCALL_BIT, Target::Deny, Target::Next),
    ];
    search(&mut body, &spans);
    let (allow_at, deny_at) = (body.len(), body.len() + 1);
    let mut program = Vec::with_capacity(body.len() + 2);
    for (at, insn) in body.iter().enumerate() {
        let offset = |target: Target| -> Option<u8> {
            let to = match target {
                Target::Next => return Some(0),
                Target::Skip(n) => return u8::try_from(n).ok(),
                Target::Allow => allow_at,
                Target::Deny => deny_at,
            };
            u8::try_from(to - at - 1).ok()
        };
        program.push(op(insn.code, offset(insn.jt)?, offset(insn.jf)?, insn.k));
    }
    program.push(ret(SECCOMP_RET_ALLOW));
    program.push(ret(SECCOMP_RET_ERRNO | errno));
    Some(program)
}

/// Appends the search over `spans`; the accumulator holds the system call number.
fn search(program: &mut Vec<Insn>, spans: &[Span]) {
    match spans {
        [] => program.push(jump(JEQ, 0, Target::Deny, Target::Deny)),
        [span] if span.low == span.high && span.rule == Rule::Allow => {
            program.push(jump(JEQ, span.low, Target::Allow, Target::Deny));
        }
        [span] if span.low == span.high => {
            program.push(jump(JEQ, span.low, Target::Next, Target::Deny));
            leaf(program, span.rule);
        }
        [span] => {
            // A range of allowed numbers.
            program.push(jump(JGT, span.high, Target::Deny, Target::Next));
            program.push(jump(JGE, span.low, Target::Allow, Target::Deny));
        }
        _ => {
            let (low, high) = spans.split_at(spans.len() / 2);
            let mut low_half = Vec::new();
            search(&mut low_half, low);
            // nr >= pivot: jump over the low half.
            program.push(jump(
                JGE,
                high[0].low,
                Target::Skip(low_half.len()),
                Target::Next,
            ));
            program.extend(low_half);
            search(program, high);
        }
    }
}

/// A rule past its system call number.
fn leaf(program: &mut Vec<Insn>, rule: Rule) {
    match rule {
        Rule::Allow => program.push(jump(JEQ, 0, Target::Allow, Target::Allow)),
        Rule::Errno(errno) => program.push(insn(RET, SECCOMP_RET_ERRNO | errno)),
        Rule::Arg0Masked { mask, value } => {
            program.push(insn(LD_ABS, ARG0_LOW));
            program.push(insn(AND_K, mask));
            program.push(jump(JEQ, value, Target::Allow, Target::Deny));
        }
        Rule::Arg0OneOf(values) => {
            program.push(insn(LD_ABS, ARG0_LOW));
            for (i, value) in values.iter().enumerate() {
                let otherwise = if i + 1 == values.len() {
                    Target::Deny
                } else {
                    Target::Next
                };
                program.push(jump(JEQ, *value, Target::Allow, otherwise));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `program` the way the kernel does, on a call `nr` with argument 0 `arg0`.
    fn run(program: &[libc::sock_filter], arch: u32, nr: u32, arg0: u32) -> u32 {
        let data = |offset: u32| match offset {
            NR => nr,
            ARCH => arch,
            ARG0_LOW => arg0,
            other => panic!("unexpected load at {other}"),
        };
        let (mut pc, mut acc) = (0usize, 0u32);
        loop {
            let i = program[pc];
            pc += 1;
            match i.code {
                LD_ABS => acc = data(i.k),
                AND_K => acc &= i.k,
                JEQ => pc += if acc == i.k { i.jt } else { i.jf } as usize,
                JGE => pc += if acc >= i.k { i.jt } else { i.jf } as usize,
                JGT => pc += if acc > i.k { i.jt } else { i.jf } as usize,
                RET => return i.k,
                code => panic!("unexpected instruction {code:#x}"),
            }
        }
    }

    #[test]
    fn the_search_finds_every_rule_and_refuses_the_rest() {
        const ARCH_X: u32 = 0xc000_003e;
        let mut rules: Vec<(u32, Rule)> = (0..300).step_by(3).map(|n| (n, Rule::Allow)).collect();
        // A run of consecutive allowed numbers.
        rules.extend((1000..1100).map(|n| (n, Rule::Allow)));
        rules.push((301, Rule::Errno(38)));
        rules.push((
            302,
            Rule::Arg0Masked {
                mask: 0x10000,
                value: 0x10000,
            },
        ));
        rules.push((303, Rule::Arg0OneOf(&[2, 10])));
        let program = program(ARCH_X, &rules, 1).unwrap();
        let allow = SECCOMP_RET_ALLOW;
        let eperm = SECCOMP_RET_ERRNO | 1;
        for nr in 0..1200 {
            let expected = match nr {
                n if n < 300 && n % 3 == 0 => allow,
                1000..1100 => allow,
                301 => SECCOMP_RET_ERRNO | 38,
                302 | 303 => eperm, // argument 0 is 0: refused
                _ => eperm,
            };
            assert_eq!(run(&program, ARCH_X, nr, 0), expected, "nr {nr}");
        }
        assert_eq!(run(&program, ARCH_X, 302, 0x10011), allow);
        assert_eq!(run(&program, ARCH_X, 302, 0x00011), eperm);
        assert_eq!(run(&program, ARCH_X, 303, 2), allow);
        assert_eq!(run(&program, ARCH_X, 303, 10), allow);
        assert_eq!(run(&program, ARCH_X, 303, 1), eperm);
        assert_eq!(run(&program, ARCH_X, X32_SYSCALL_BIT, 0), eperm);
        assert_eq!(run(&program, 0x4000_00b7, 0, 0), SECCOMP_RET_KILL_PROCESS);
        assert!(program.len() < 256, "{} instructions", program.len());
    }
}
