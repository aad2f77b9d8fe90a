from lit_rpe.cli import main

main()
