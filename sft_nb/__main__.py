

# %% ../nbs/09_cli.ipynb #15a7fe4b
import sys
from sft_nb.cli import main
if __name__ == '__main__': sys.exit(main())

# %% ../nbs/09_cli.ipynb #15a7fe4b
import sys
from sft_nb.cli import main
if __name__ == '__main__': sys.exit(main())

# %% ../nbs/09_cli.ipynb #1645e530
import sys
from sft_nb.cli import main
if __name__ == '__main__': sys.exit(main())

# %% ../nbs/09_cli.ipynb #1645e530
import sys
from sft_nb.cli import main
if __name__ == '__main__': sys.exit(main())