from setuptools import find_packages, setup

with open("README.md", encoding="utf-8") as readme:
    long_description = readme.read()

setup(
    name="aerospike-wsgi-session",
    version="0.1.0",
    description="Server-side sessions for any WSGI application, stored in Aerospike.",
    long_description=long_description,
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    packages=find_packages(
        include=["aerospike_wsgi_session", "aerospike_wsgi_session.*"]
    ),
    package_data={"aerospike_wsgi_session": ["py.typed"]},
    python_requires=">=3.11",
    install_requires=["aerospike>=19,<20", "webob>=1.8"],
    extras_require={
        "paste": ["PasteDeploy>=3"],
        "pyramid": ["pyramid>=2"],
        "bottle": ["bottle>=0.12"],
    },
    entry_points={
        "pytest11": ["aerospike_wsgi_session = aerospike_wsgi_session.testing.plugin"],
        "paste.filter_app_factory": [
            "main = aerospike_wsgi_session.paste:filter_app_factory"
        ],
        "console_scripts": ["aerospike-wsgi-session = aerospike_wsgi_session.cli:main"],
    },
    classifiers=[
        "Framework :: Pyramid",
        "License :: OSI Approved :: Apache Software License",
        "Programming Language :: Python :: 3.11",
        "Topic :: Internet :: WWW/HTTP :: WSGI :: Middleware",
        "Typing :: Typed",
    ],
)
