"""Every public exception wanflow raises, in one place.

The hierarchy::

    WanflowError                 base class; never raised directly
    ├── PipelineError            the pipeline (or its vars) is invalid; carries Diagnostics. CLI exit 2
    ├── UsageError               a command-line or configuration mistake. CLI exit 2
    │   └── FrozenMismatch       --frozen: the pipeline or vars would change a locked request
    ├── TemplateReferenceError   a template names a step, var or output field that does not exist
    ├── TemplateProblem          a template failed to parse or render; turned into a located
    │                            Diagnostic, or into a step's error at run time
    ├── TemplateLimitError       a template went past a size, time or depth bound; reported as a
    │                            TemplateProblem
    ├── MediaError               a file is not readable media of a supported kind; also a ValueError
    ├── ConformError             an image cannot be adapted to a model's size rules; also a ValueError
    ├── StepFailed               one step could not produce its outputs. CLI exit 1 (the run goes on)
    │   └── ProviderError        the provider refused or failed the generation
    │       └── ResultGone       a result URL answered 403/404/410: expired or gone
    ├── StoreError               the artifact store or step cache cannot be read or written
    │   └── FileSystemError      a folder is a file, unwritable, read-only or full (also an OSError)
    ├── StoreConflict            another machine recorded a create for the same request at the same
    │                            moment (a shared store); the step stops rather than pay twice
    └── WorkspaceBusy            a run holds the workspace, so ``cache gc`` would be unsafe. CLI exit 1

MediaError and ConformError were ValueErrors before they joined the tree and still are, so
``except ValueError`` keeps catching them. A WanflowError that reaches the command line is
printed as ``wanflow: error: ...`` (exit 1) rather than as an internal error.

Only ``PipelineError`` and ``UsageError`` mean "nothing was run"; the others surface per step in
the run summary and the run record.

Not part of the tree, because they never reach a user: ``TaskGone`` (wanflow.providers.protocol: a
control-flow signal inside a provider), ``Rejection`` (wanflow.sim: the simulator's HTTP error
answers) and the YAML reader's private ``_TooDeep``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from wanflow._diagnostics import Diagnostic


class WanflowError(Exception):
    """Base class of every error wanflow raises on purpose."""


class PipelineError(WanflowError):
    """The pipeline file, its vars or its references are invalid.

    ``diagnostics`` lists every problem found, each with file, line, column and field path.
    """

    def __init__(self, diagnostics: list[Diagnostic]) -> None:
        self.diagnostics = diagnostics
        first = diagnostics[0].format() if diagnostics else "invalid pipeline"
        more = f" (and {len(diagnostics) - 1} more)" if len(diagnostics) > 1 else ""
        super().__init__(first + more)


class UsageError(WanflowError):
    """A command-line argument, environment variable or config value is wrong."""


class FrozenMismatch(UsageError):
    """``--frozen``: resolved requests differ from the lockfile; ``differences`` says how."""

    def __init__(self, path: object, differences: list, instance: str = "default") -> None:
        self.path = path
        self.differences = differences
        self.instance = instance
        where = "" if instance == "default" else f"instance '{instance}': "  # a matrix or batch names which
        lines = "\n".join(f"  {where}{difference.format()}" for difference in differences)
        super().__init__(f"--frozen: {len(differences)} request(s) would differ from {getattr(path, 'name', path)}"
                         f"{'' if instance == 'default' else f' (instance {instance!r})'}; nothing was run:\n{lines}")


class TemplateReferenceError(WanflowError):
    """A template names something that does not exist (a step, a var or an output field).

    Raised while rendering and turned into a located Diagnostic by the renderer's caller.
    """


class StepFailed(WanflowError):
    """A step could not produce its outputs; its dependents are skipped."""


class ProviderError(StepFailed):
    """A provider refused or failed a generation.

    ``code`` is the service's own error code when it gave one; ``retryable`` says whether the
    same request may succeed later.
    """

    def __init__(self, message: str, *, code: str | None = None, retryable: bool = False) -> None:
        self.code = code
        self.retryable = retryable
        super().__init__(message)


class StoreError(WanflowError):
    """The artifact store or the step cache could not be read or written."""


class FileSystemError(StoreError, OSError):
    """Writing a file failed: the message names the path, what is wrong and what to do.

    Also an OSError (with the original ``errno`` and ``filename``), so code that handles OSError
    still does; a step that meets one fails with the message instead of an internal error.
    """

    def __init__(self, message: str, errno: int | None = None, filename: object = None) -> None:
        super().__init__(message)
        self.errno = errno
        self.filename = filename

    def __str__(self) -> str:
        return str(self.args[0])


class WorkspaceBusy(WanflowError):
    """Another wanflow process holds the workspace in a mode that excludes this command."""


class TemplateProblem(WanflowError):
    """A template failed; ``line`` is the 1-based line inside the template when known."""

    def __init__(self, message: str, line: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.line = line


class TemplateLimitError(WanflowError):
    """A template went past one of the bounds above; the message says which."""


class ConformError(WanflowError, ValueError):
    """The image cannot be made to fit (e.g. an aspect ratio no size within the bounds has).

    Also a ValueError (what it was before joining the WanflowError tree), so ``except ValueError`` still catches it.
    """


class MediaError(WanflowError, ValueError):
    """A file is not readable media of a supported kind; the message says why.

    Also a ValueError (what it was before joining the WanflowError tree), so ``except ValueError`` still catches it.
    """


class ResultGone(ProviderError):
    """The result URL answered 403/404/410: it expired or the object is gone."""


class StoreConflict(WanflowError):
    """Another machine recorded a create for the same request at the same moment."""
