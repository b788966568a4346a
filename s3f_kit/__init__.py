"""The S³F-Net kit as a package; its rooms are the seams a reader looks for.

    s3f_kit.experiments, .config,    the registry of the paper's experiments; what a run is
            .run_record              told (RunConfig) and what it records (RunRecord)
    s3f_kit.releases, .modelfile,    the paper's released models; the check every model file
            .locks                   passes; one process per folder (a sweep, a training run)
    s3f_kit.spectral_kernels         how SpectralFilter's FFTs and mixing are computed fastest
    s3f_kit.reports                  records, tables, statistics, claims, figures
    s3f_kit.run                      one run: training, evaluation, metrics, the notebooks
    s3f_kit.apply                    applying a model: prediction, explanation, export
    s3f_kit.sweep                    many runs: s3f-sweep, jobs, workers, the Ray cluster

The model is the top-level module s3f_common (every notebook imports it), with the record a
model travels with, s3f_preprocessing, beside it. Imports run one way, in the order above: the
root's modules import no room, the reports only the root, a run the reports' figures, applying
a model a run's metrics and env (tests/test_kit_layout.py: no circle, modules or rooms).

A module is imported under its short name, which code, docstrings and messages use:
`from s3f_kit.reports import claims as s3f_claims`. The package files import nothing, so
`import s3f_common` (which reads s3f_kit.experiments) does not pull in the rooms.
"""
