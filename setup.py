from setuptools import find_packages, setup

setup(
    name="age_assets",
    version="0.1.0",
    description="A Dagster asset graph that trains facial age estimators by transfer learning",
    packages=find_packages(exclude=["age_assets_tests"]),
    python_requires=">=3.10,<3.13",
    install_requires=[
        "dagster>=1.11,<1.14",
        "dagster-webserver>=1.11,<1.14",
        "tensorflow>=2.18,<2.22",
        "numpy>=1.26,<3",
        "pandas>=2.2,<4",
        "pillow>=10.4,<14",
        "albumentations>=2.0.5,<3",
        "opencv-python-headless>=4.9,<6",
        "scikit-learn>=1.5,<2",
        "joblib>=1.3",
        "simplejpeg>=1.7",
        "matplotlib>=3.8,<4",
    ],
    entry_points={"console_scripts": ["age-assets=age_assets.cli:main"]},
    extras_require={
        "k8s": ["dagster-k8s>=0.27,<0.30"],
        "dev": ["pytest>=8,<10", "pytest-xdist>=3.6,<4", "dagster-k8s>=0.27,<0.30", "playwright>=1.45,<2"],
    },
)
