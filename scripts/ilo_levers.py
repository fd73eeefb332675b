"""What each ILO lever gives: one latent search, then many layer-stage variants from that same latent.

Diagnostic runs behind the lever table of docs/BENCHMARKS.md ("Inverse problems"): held-out renders,
the embedded 64² model, tasks and methods as scripts/bench_inverse.py sets them. PSNR against the
truth on 8-bit results (median over the images; `hole`/`known`: inside / outside the inpainting box),
`faces`: dlib's detector (when installed). No equal-time budget here: each line states its steps.

    python scripts/ilo_levers.py e1 [images]   # experiments e1 … e11 (below), one thread
"""
import copy, json, math, sys, time
from dataclasses import replace
ROOT = __import__("pathlib").Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
sys.path.insert(0, str(ROOT))
import torch
torch.set_num_threads(1)
from bench_inverse import observe, method_options
from optinv.engine import jobs, warmstart, operators, ilo as ilo_mode
from optinv.engine.options import merged_options, optimizer_settings
from optinv.engine.optimize import Problem, run
from optinv.io.checkpoints import load_generator
from optinv.io.image_files import load_image
from optinv.engine.spaces import gaussian_fit
from losses.recipe import build_objective

g = load_generator(None, device="cpu")
gaussian_fit(g)
N = int(sys.argv[2]) if len(sys.argv) > 2 else 4
images = sorted((ROOT / "samples" / "images").glob("*.png"))[:N]
truth = torch.stack([load_image(p, size=g.size) for p in images])


def q(x):
    return (x.clamp(0, 1) * 255).round() / 255


def psnr(a, b, m=None):
    d = (q(a) - b) ** 2
    if m is None:
        mse = d.flatten(1).mean(1)
    else:
        mm = m.expand_as(d)
        mse = (d * mm).flatten(1).sum(1) / mm.flatten(1).sum(1)
    return [10 * math.log10(1 / max(float(x), 1e-12)) for x in mse]


def med(xs):
    xs = sorted(xs)
    n = len(xs)
    return (xs[n // 2] + xs[(n - 1) // 2]) / 2


class Setup:
    def __init__(self, task, method, steps, **over):
        obs, extra, mask = observe(task, truth)
        self.task, self.mask = task, mask
        mo = {**method_options(method, steps), **over}
        mo.pop("ilo", None); mo.pop("ilo_steps", None)
        opts = jobs.JobOptions.of(batch=N, progress=False, seed=0, **mo,
                                  **{k: v for k, v in extra.items() if k != "scale"})
        job = "pulse" if "scale" in extra else "invert"
        if "scale" in extra:
            op = jobs._operator(operators.downscale_operator(g.size, g.size // extra["scale"]), g.size,
                                g.size // extra["scale"], opts)
        else:
            op = jobs._operator(operators.Identity(), g.size, g.size, opts)
        m = merged_options(job, opts, g)
        self.objective = build_objective(m["recipe"])
        self.settings = optimizer_settings(m, opts)
        self.settings.precision = "fp32"
        start = warmstart.plan_start(g, m["space"], m.get("init", "mean"), None, False, None, opts.tile,
                                     g.card.get("zplus_mapping", "gaussian"), 1)
        target = obs
        self.space = warmstart.starting_space(g, start, target, [0] * N, 0)
        tgt = operators.prepare(op, target)
        self.problem = Problem(target=tgt, operator=op, data_term="L2", data_weight=operators.data_weight(op))
        self.res = run(g, self.space, self.problem, self.objective, self.settings)
        self.sec_step = self.res.seconds / max(1, self.res.steps_run)

    def scores(self, images):
        from optinv.run.evaluate import score_pair
        faces = [score_pair(q(images[k]), truth[k], faces=True)["face_found"] for k in range(N)]
        out = {"psnr": med(psnr(images, truth)), "faces": sum(int(f) for f in faces if f is not None)}
        if self.mask is not None:
            out["hole"] = med(psnr(images, truth, 1 - self.mask))
            out["known"] = med(psnr(images, truth, self.mask))
        return out

    def ilo(self, steps, radius, lr=0.1, freeze=False, **stage):
        """The layer stages from a copy of this latent; ``freeze``: the features alone (the default since),
        else the latent moves too (ILO's code, the default when e1–e7 ran)."""
        space, res = copy.deepcopy(self.space), copy.deepcopy(self.res)
        s = ilo_mode.parse_ilo(steps, radius, lr, joint=not freeze)
        keep = ilo_mode.stage_settings
        if stage:
            ilo_mode.stage_settings = lambda st, n, l: replace(keep(st, n, l), **stage)
        try:
            t = time.perf_counter()
            last, recs = ilo_mode.refine(g, space, res, self.problem, self.objective, self.settings, s)
            secs = time.perf_counter() - t
        finally:
            ilo_mode.stage_settings = keep
        moved = [[m["moved"] for m in r["moved"]] for r in recs]
        return last.images, secs, moved


def report(tag, d):
    print(json.dumps({"tag": tag, **{k: (round(v, 3) if isinstance(v, float) else v) for k, v in d.items()}}),
          flush=True)


def e1():
    for task in ("sr8", "inpaint_eyes"):
        ref = Setup(task, "PULSE", 150)
        report(f"{task} PULSE150", {**ref.scores(ref.res.images), "s_step": ref.sec_step})
        wp = Setup(task, "W+", 150)
        report(f"{task} W+150", {**wp.scores(wp.res.images), "s_step": wp.sec_step})
        p88 = Setup(task, "PULSE", 88)
        report(f"{task} PULSE88", p88.scores(p88.res.images))
        for steps, rad in (("25,25,25", "0.05"), ("25,25,25", "0.2"), ("25,25,25", "1"), ("0,25,25,25", "0.2"), ("25,25,25,25", "0.2")):
            im, secs, mv = p88.ilo(steps, rad)
            report(f"{task} PULSE88+ILO {steps} r{rad}", {**p88.scores(im), "secs": secs, "moved": [round(med(x),3) for x in zip(*mv)]})
        w88 = Setup(task, "W+", 88)
        report(f"{task} W+88", w88.scores(w88.res.images))
        for steps, rad in (("25,25,25", "0.05"), ("25,25,25", "0.2"), ("25,25,25", "1")):
            im, secs, mv = w88.ilo(steps, rad)
            report(f"{task} W+88+ILO {steps} r{rad}", {**w88.scores(im), "secs": secs, "moved": [round(med(x),3) for x in zip(*mv)]})


def e2():
    task = "sr8"
    p88 = Setup(task, "PULSE", 88)
    report(f"{task} PULSE88", p88.scores(p88.res.images))
    for steps, rad, kw in (("25,25,25", "0", {}), ("25,25,25", "0.01", {}), ("25,25,25", "0.02", {}), ("25,25,25", "0.03", {}),
                           ("25,25,25", "0.1", {}), ("25,25,25", "0.1,0.05,0.02", {}), ("25,25,25", "0.02,0.05,0.1", {}),
                           ("40,40", "0.05", {}), ("75", "0.05", {}), ("25,25,25", "0.05", {"lr": 0.03}), ("25,25,25", "0.05", {"lr": 0.3}),
                           ("25,25,25", "0.05", {"noise": "trainable"})):
        lr = kw.pop("lr", 0.1)
        im, secs, mv = p88.ilo(steps, rad, lr, **kw)
        report(f"{task} PULSE88+ILO {steps} r{rad} lr{lr} {kw}", {**p88.scores(im), "secs": secs, "moved": [round(med(x),3) for x in zip(*mv)]})


def e3():
    task = "sr8"
    variants = {
      "Z+ lr0.2": ("PULSE", {"lr": 0.2}),
      "Z+ geo0.5": ("PULSE", {"recipe": "100*L2+0.5*GEOCROSS"}),
      "Z+ tile": ("PULSE", {"tile": True}),
      "W": ("W+", {"space": "w"}),
      "W+ lr0.05": ("W+", {"lr": 0.05}),
    }
    for name, (m, over) in variants.items():
        try:
            s = Setup(task, m, 88, **over)
        except Exception as e:
            print(name, "failed", e, flush=True); continue
        report(f"{task} {name} 88", {**s.scores(s.res.images), "per": [round(x,2) for x in psnr(s.res.images, truth)], "s_step": s.sec_step})
        for steps, rad in (("40,40", "0.05"), ("25,25,25", "0.1,0.05,0.02")):
            im, secs, mv = s.ilo(steps, rad)
            report(f"{task} {name} 88+ILO {steps} r{rad}", {**s.scores(im), "per": [round(x,2) for x in psnr(im, truth)], "secs": secs})


def e4():
    for task in ("sr8", "inpaint_eyes"):
        for n in (60, 100):
            s = Setup(task, "W+", n, space="w")
            report(f"{task} W {n}", {**s.scores(s.res.images), "s_step": s.sec_step})
            confs = [("40,40", "0.05"), ("40,40", "0.1"), ("60,60", "0.05"), ("30,30,30", "0.05"), ("40,40", "0.1,0.05")] if n == 100 else [("50,50", "0.05"), ("40,40,40", "0.05")]
            if task == "inpaint_eyes" and n == 100:
                confs += [("40,40", "0.2"), ("30,30,30", "0.1")]
            for steps, rad in confs:
                im, secs, mv = s.ilo(steps, rad)
                report(f"{task} W{n}+ILO {steps} r{rad}", {**s.scores(im), "per": [round(x,2) for x in psnr(im, truth)], "secs": secs})


def e5():
    task = "sr8"
    variants = {
      "Ztile pulse100L2": ("PULSE", {"tile": True, "recipe": "100*L2"}),
      "Ztile cos lr0.1 fixednoise": ("PULSE", {"tile": True, "recipe": "100*L2", "lr": 0.1, "schedule": "cosine-ramp", "noise": "fixed", "trainable_noise": 0}),
      "W random": ("W+", {"space": "w", "init": "random"}),
    }
    for name, (m, over) in variants.items():
        try:
            s = Setup(task, m, 100, **over)
        except Exception as e:
            print(name, "failed", repr(e), flush=True); continue
        report(f"{task} {name} 100", {**s.scores(s.res.images), "per": [round(x,2) for x in psnr(s.res.images, truth)], "s_step": s.sec_step})
        for steps, rad in (("40,40", "0.1"),):
            im, secs, mv = s.ilo(steps, rad)
            report(f"{task} {name} 100+ILO {steps} r{rad}", {**s.scores(im), "per": [round(x,2) for x in psnr(im, truth)], "secs": secs})


def e6():
    plan = {60: [("40,40", "0.1"), ("30,30,20", "0.1")], 80: [("30,30", "0.1"), ("60", "0.1"), ("20,20,20", "0.1")], 100: [("20,20", "0.1"), ("40", "0.1")]}
    for task in ("sr8", "inpaint_eyes"):
        for n, confs in plan.items():
            s = Setup(task, "W+", n, space="w")
            report(f"{task} W {n}", {**s.scores(s.res.images), "s_step": s.sec_step})
            for steps, rad in confs:
                im, secs, mv = s.ilo(steps, rad)
                report(f"{task} W{n}+ILO {steps} r{rad}", {**s.scores(im), "per": [round(x,2) for x in psnr(im, truth)], "secs": secs})


def e7():
    for task in ("sr8", "inpaint_eyes"):
        for lr in (0.2, 0.4):
            for n in (60, 90):
                s = Setup(task, "W+", n, space="w", lr=lr)
                report(f"{task} W lr{lr} {n}", {**s.scores(s.res.images), "s_step": s.sec_step})
                for steps, rad in ([("40,40", "0.1")] if n == 60 else [("30,30", "0.1"), ("50", "0.1")]):
                    im, secs, mv = s.ilo(steps, rad)
                    report(f"{task} W lr{lr} {n}+ILO {steps} r{rad}", {**s.scores(im), "per": [round(x,2) for x in psnr(im, truth)], "secs": secs})


def e8():
    for task in ("inpaint_eyes", "sr8"):
        s = Setup(task, "W+", 100, space="w")
        report(f"{task} W 100", {**s.scores(s.res.images)})
        for steps, rad, fr in (("20,20", "0.1", True), ("20,20", "0.05", False), ("40", "0.1", True), ("20,20", "0.2", True)):
            im, secs, mv = s.ilo(steps, rad, freeze=fr)
            report(f"{task} W100+ILO {steps} r{rad} freeze{fr}", {**s.scores(im), "per": [round(x,2) for x in psnr(im, truth)], "secs": secs})


def e9():
    plan = {60: [("40,40", "0.1")], 80: [("30,30", "0.1"), ("30,30", "0.2"), ("20,20,20", "0.1")], 120: [("20,20", "0.1")]}
    for task in ("sr8", "inpaint_eyes"):
        for n, confs in plan.items():
            s = Setup(task, "W+", n, space="w")
            for steps, rad in confs:
                im, secs, mv = s.ilo(steps, rad, freeze=True)
                report(f"{task} W{n}+ILO {steps} r{rad} frozen", {**s.scores(im), "per": [round(x,2) for x in psnr(im, truth)], "secs": secs})


def e10():
    """Inpainting on the 256² model: which lever moves the hole (run with the 256² model as the default)."""
    task = "inpaint_eyes"
    p = Setup(task, "PULSE", 150)
    report("PULSE 150", p.scores(p.res.images))
    w = Setup(task, "W+", 155)
    report("W+ 155", w.scores(w.res.images))
    for n in (112, 160):
        s = Setup(task, "W+", n, space="w")
        report(f"W {n}", s.scores(s.res.images))
        if n == 112:
            for steps, rad in (("20,20,20", "0.1"), ("20,20,20", "0.02"), ("20,20", "0.1"), ("0,0,20", "0.1"), ("20", "0.1")):
                im, secs, mv = s.ilo(steps, rad, freeze=True)
                report(f"W{n}+ILO {steps} r{rad}", {**s.scores(im), "secs": secs})
    for rec in ("100*L2+0.01*WAVG", "100*L2+0.1*WAVG", "100*L2+1*WAVG"):
        s = Setup(task, "W+", 112, space="w", recipe=rec)
        report(f"W 112 {rec}", s.scores(s.res.images))
        im, secs, mv = s.ilo("0,0,20", "0.1", freeze=True)
        report(f"W 112 {rec} + ILO 0,0,20 r0.1", {**s.scores(im), "secs": secs})


def e11():
    """ILO at ×32 (8×8 → 256²) through the pulse job: stages and radius against faces found, seeds 0–2
    (the default, 20,20,20 at r0.1, is the pulse_hires row). Run with the 256² model as the default."""
    from statistics import median
    from benchmark import faces_found, lowres_with_truths
    from optinv.engine import metrics
    from optinv.io.image_files import to_pil
    files, _, truths = lowres_with_truths(g, 32, 8)
    for steps, rad in (("20,20", "0.1"), ("20,20,20", "0.03"), ("20,20,20", "0.01")):
        every, ps, secs = [], [], 0.0
        for seed in range(3):
            opts = jobs.JobOptions(steps=200, batch=1, progress=False, ilo=True, seed=seed, ilo_steps=steps, ilo_radius=rad)
            t = time.perf_counter()
            res = jobs.pulse(files, scale=32, model=g, device="cpu", options=opts)
            secs += time.perf_counter() - t
            every += res
            ps += [metrics.psnr(r.image, tr) for r, tr in zip(res, truths)]
        report(f"x32 ILO {steps} r{rad}", {"faces": f"{faces_found([to_pil(r.image) for r in every])}/{len(every)}",
                                           "psnr": median(ps), "s_per_image": secs / len(every)})


if __name__ == "__main__":
    globals()[sys.argv[1]]()
