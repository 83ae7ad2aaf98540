//! Renders the Keitaro postback from Chatterfy's docs against a borrowed dialog.
//! Target: <= 150 ns per render and no allocation besides the output string; the allocation
//! count is measured by a counting allocator and printed before the timings.

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::BTreeMap;
use std::hint::black_box;
use std::sync::atomic::{AtomicUsize, Ordering};

use criterion::{Criterion, criterion_group, criterion_main};
use funnelhooks_template::{Builtin, Context, Target, Template, Value};

struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const KEITARO: &str = "https://keitaro.example.com/25123a/postback?subid={tracker.clickid}&username={username}&chatid={chatId}&startdialogue={createdAt}";

/// A dialog as the dialog model will hold it: values borrowed, not cloned, to render.
struct Dialog {
    chat_id: i64,
    username: String,
    created_at_ms: i64,
    tracker: BTreeMap<String, String>,
}

impl Context for Dialog {
    fn builtin(&self, b: Builtin) -> Option<Value<'_>> {
        match b {
            Builtin::ChatId => Some(Value::Int(self.chat_id)),
            Builtin::Username => Some(Value::Str(&self.username)),
            Builtin::CreatedAt => Some(Value::Time(self.created_at_ms)),
            _ => None,
        }
    }
    fn field(&self, _: &str) -> Option<Value<'_>> {
        None
    }
    fn tracker(&self, key: &str) -> Option<Value<'_>> {
        self.tracker.get(key).map(|v| Value::Str(v))
    }
}

fn bench(c: &mut Criterion) {
    let template = Template::parse(KEITARO, Target::Url).unwrap();
    let dialog = Dialog {
        chat_id: 1_227_280,
        username: "john_doe".into(),
        created_at_ms: 1_710_092_972_806,
        tracker: [("clickid".to_string(), "3a5f9c2e1b".to_string())].into(),
    };

    let before = ALLOCATIONS.load(Ordering::Relaxed);
    let runs = 10_000;
    for _ in 0..runs {
        black_box(template.render(black_box(&dialog)).unwrap());
    }
    let per_render = (ALLOCATIONS.load(Ordering::Relaxed) - before) as f64 / runs as f64;
    println!("keitaro postback: {per_render:.2} allocations per render (the output string)");
    println!("rendered: {}", template.render(&dialog).unwrap().output);

    c.bench_function("render keitaro postback", |b| {
        b.iter(|| black_box(template.render(black_box(&dialog)).unwrap()))
    });
    let mut out = String::with_capacity(256);
    let mut missing = Vec::new();
    c.bench_function("render keitaro postback into a reused buffer", |b| {
        b.iter(|| {
            out.clear();
            template
                .render_into(black_box(&dialog), &mut out, &mut missing)
                .unwrap();
            black_box(&out);
        })
    });
    // The floor on this machine: one allocation and one copy of a rendered postback.
    let rendered = template.render(&dialog).unwrap().output;
    c.bench_function("baseline: allocate and copy the rendered postback", |b| {
        b.iter(|| {
            let mut s = String::with_capacity(192);
            s.push_str(black_box(&rendered));
            black_box(s)
        })
    });
    c.bench_function("parse keitaro postback", |b| {
        b.iter(|| black_box(Template::parse(black_box(KEITARO), Target::Url).unwrap()))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
